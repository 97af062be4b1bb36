/** The wasmvisor UI: VM list, console tabs, device manager and live stats over the host API. */
import {
  consoleStreams,
  type ConsoleStream,
  type DeviceRow,
  type DiskSnapshotAction,
  type VmSnapshotAction,
  type VmSnapshotInfo,
  type VmState,
  type VmStats,
  type VmSummary,
} from '../../main/host/api-types.js';
import { connectHost } from './client.js';
import { ConsoleView } from './console-view.js';
import { StatsCharts, HISTORY_SECONDS } from './charts.js';
import { renderDevices, showDeviceIo, type ControlOutcome } from './devices-view.js';
import { editVmDialog } from './vm-dialog.js';
import { renderSnapshots } from './snapshots-view.js';
import { askPassphrases } from './passphrase-dialog.js';
import { askOverlayPath } from './overlay-dialog.js';
import { askMigrationTarget } from './migrate-dialog.js';
import { clear, h } from './dom.js';
import { initTheme, toggleTheme } from './theme.js';

initTheme();
const host = connectHost();
const $ = <T extends HTMLElement>(sel: string) => document.querySelector(sel) as T;

const vms = new Map<string, VmSummary>();
const stats = new Map<string, VmStats[]>();
const devices = new Map<string, DeviceRow[]>();
/** Console views by tab key ("vm/stream"), created when their tab is first shown. */
const consoles = new Map<string, ConsoleView>();
/** Open console tabs in order: one per console stream of each VM the user opened. */
const tabs: string[] = [];
/** The VM shown in the detail pane, and the console tab shown. */
let selected: string | undefined;
let activeTab: string | undefined;
/** The tab last shown per VM, so selecting a VM returns to the console the user was in. */
const lastTab = new Map<string, string>();
/** Outcomes of device control changes, per VM then device. */
const outcomes = new Map<string, Map<string, ControlOutcome>>();
/** Each VM's snapshots (the whole VM), and the last snapshot operation's outcome. */
const snapshots = new Map<string, VmSnapshotInfo[]>();
const snapshotOutcomes = new Map<string, ControlOutcome>();

// VM names cannot contain '/' (the definition store refuses them), so the key splits back.
const tabKey = (name: string, stream: ConsoleStream) => `${name}/${stream}`;
const splitKey = (key: string) => {
  const i = key.lastIndexOf('/');
  return { name: key.slice(0, i), stream: key.slice(i + 1) as ConsoleStream };
};
const streamsOf = (name: string): ConsoleStream[] => {
  const v = vms.get(name);
  return v ? consoleStreams(v.config) : ['ttyS0'];
};
const charts = new StatsCharts();
$('#charts').append(charts.element);

const STATE_LABEL: Record<VmState, string> = {
  stopped: 'Stopped',
  starting: 'Starting',
  running: 'Running',
  paused: 'Paused',
  stopping: 'Stopping',
};
/** The state as the list and toolbar say it: a VM waiting for a live migration says so. */
const stateLabel = (v: VmSummary) =>
  v.state === 'starting' && v.incoming ? 'Waiting' : STATE_LABEL[v.state];
const isUp = (s: VmState | undefined) => s === 'running' || s === 'paused' || s === 'starting';

const mipsText = (m: number) => (m < 10 ? m.toFixed(1) : m.toFixed(0));

function metaText(s: VmStats): string {
  const cpu = s.cpuPercent === undefined ? '' : ` · VM thread ${s.cpuPercent.toFixed(1)}% CPU`;
  const jit = s.jit ? ` · JIT ${s.jit.translatedPercent.toFixed(0)}% translated` : '';
  // On instruction time the guest's clock runs apart from the host's: show both.
  const clock = s.guestClock?.icount ? ` · guest clock ${Math.floor(s.guestClock.seconds)} s` : '';
  return `${mipsText(s.mips)} MIPS${cpu}${jit} · up ${Math.floor(s.uptimeSec)} s${clock}`;
}

function toast(msg: string, kind: 'error' | 'info' = 'error'): void {
  const t = h('div', { class: `toast toast-${kind}`, role: 'status' }, msg);
  $('#toasts').append(t);
  setTimeout(() => t.remove(), 6000);
}

async function act(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (e) {
    toast((e as Error).message);
  }
}

const waitingText = (uri: string) => `waiting on ${uri} for a VM migrating here`;

function exitText(v: VmSummary): string {
  const e = v.lastExit;
  if (!e || isUp(v.state)) return '';
  switch (e.kind) {
    case 'poweroff':
      return 'guest powered off';
    case 'stopped':
      return 'stopped by the host';
    case 'killed':
      return 'terminated';
    case 'fail':
      return `guest failure (code ${e.code})`;
    case 'error':
      return e.message;
    case 'saved':
      return `saved to ${e.path}`;
    case 'migrated':
      return `migrated to ${e.to}`;
  }
}

function button(
  label: string,
  action: string,
  onclick: (e: MouseEvent) => void,
  opts: { primary?: boolean; danger?: boolean; title?: string } = {},
) {
  return h(
    'button',
    {
      class: `btn${opts.primary ? ' btn-primary' : ''}${opts.danger ? ' btn-danger' : ''}`,
      'data-action': action,
      title: opts.title,
      onclick: (e: Event) => {
        e.stopPropagation();
        onclick(e as MouseEvent);
      },
    },
    label,
  );
}

function vmButtons(name: string, state: VmState): HTMLElement[] {
  const out: HTMLElement[] = [];
  if (!isUp(state) && state !== 'stopping') {
    const saved = vms.get(name)?.savedState;
    if (saved) {
      out.push(
        button('⏵ Resume saved', 'resume-saved', () => void act(startVm(name, true)), {
          primary: true,
          title: `Resume the state saved ${new Date(saved.savedAt).toLocaleString()}`,
        }),
      );
    }
    out.push(
      button('▶ Start', 'start', () => void act(startVm(name)), {
        primary: !saved,
        ...(saved
          ? { title: 'Boot afresh (the saved state stays, but a changed disk makes it unusable)' }
          : {}),
      }),
    );
    out.push(
      button('⇠ Receive…', 'receive', () => void act(receive(name)), {
        title: 'Wait for a VM migrating live and run it as this one',
      }),
    );
  } else {
    if (state === 'paused')
      out.push(button('▶ Resume', 'resume', () => void act(host.call('resumeVm', { name }))));
    else out.push(button('‖ Pause', 'pause', () => void act(host.call('pauseVm', { name }))));
    out.push(button('↻ Reset', 'reset', () => void act(host.call('resetVm', { name }))));
    out.push(
      button('⤓ Save', 'save', () => void act(host.call('saveVm', { name })), {
        title: 'Save the whole VM (RAM, CPU, devices) and stop it; Resume saved brings it back',
      }),
    );
    out.push(
      button('⇢ Migrate…', 'migrate', () => void act(migrate(name)), {
        title: 'Move the running VM live to a wasmvisor waiting with run --incoming',
      }),
    );
    out.push(
      button('■ Stop', 'stop', (e) => void act(host.call('stopVm', { name, force: e.shiftKey })), {
        title: 'Stop at the next slice (Shift-click: force)',
      }),
    );
  }
  return out;
}

/** Asks where to, then migrates the VM; the outcome shows as a note (a failure as an error). */
async function migrate(name: string): Promise<void> {
  const uri = await askMigrationTarget(name);
  if (!uri) return;
  toast(`migrating ${name} to ${uri}…`, 'info');
  const { message } = await host.call('migrateVm', { name, uri });
  toast(message, 'info');
}

/** Asks where to listen, then starts the VM waiting there for a live migration. */
async function receive(name: string): Promise<void> {
  const uri = await askMigrationTarget(name, 'receive');
  if (!uri) return;
  stats.set(name, []);
  await host.call('startVm', { name, incoming: uri });
  toast(`${name} waits on ${uri} for a migrating VM`, 'info');
  select(name);
}

/** Starts a VM, first asking for the passphrases of its encrypted disks (if any lack key files). */
async function startVm(name: string, resume = false, snapshot?: string): Promise<void> {
  const need = await host.call('diskKeysNeeded', { name });
  let passphrases: (string | null)[] | undefined;
  if (need.length) {
    const disks = vms.get(name)?.config.disks.length ?? 0;
    passphrases = await askPassphrases(name, need, disks);
    if (!passphrases) return;
  }
  stats.set(name, []);
  await host.call('startVm', {
    name,
    ...(passphrases ? { passphrases } : {}),
    ...(resume ? { resume: true } : {}),
    ...(snapshot !== undefined ? { snapshot } : {}),
  });
  select(name);
}

function renderList(): void {
  const list = $('#vm-list');
  clear(list);
  if (!vms.size) list.append(h('p', { class: 'empty' }, 'No VMs yet. Create one with “New VM”.'));
  for (const v of vms.values()) {
    const name = v.config.name;
    list.append(
      h(
        'div',
        {
          class: `vm-item${name === selected ? ' selected' : ''}`,
          'data-vm': name,
          'data-state': v.state,
          tabindex: 0,
          onclick: () => select(name),
          onkeydown: (e: Event) => (e as KeyboardEvent).key === 'Enter' && select(name),
        },
        h(
          'div',
          { class: 'vm-item-head' },
          h('span', { class: `dot dot-${v.state}` }),
          h('strong', {}, name),
          h(
            'span',
            { class: 'vm-state', title: v.incoming ? waitingText(v.incoming) : undefined },
            stateLabel(v),
          ),
        ),
        h(
          'div',
          { class: 'vm-item-meta' },
          `${v.config.memMiB} MiB · ${bootLabel(v.config.kernel)} · ${v.config.console}` +
            counted(v.config.disks.length, 'disk') +
            counted(v.config.nics.length, 'NIC') +
            counted(v.config.shares?.length ?? 0, 'shared folder') +
            ((v.config.cpus ?? 1) > 1 ? ` · ${v.config.cpus} CPUs` : '') +
            (v.config.jit === false ? ' · interpreter' : '') +
            (v.config.icount ? ' · icount' : ''),
        ),
        exitText(v) ? h('div', { class: 'vm-item-exit' }, exitText(v)) : undefined,
        h('div', { class: 'vm-item-actions' }, ...vmButtons(name, v.state)),
      ),
    );
  }
}

/** What boots a VM, for its list item: the bundled guest, U-Boot (from the disk), or a kernel. */
function bootLabel(kernel: string | undefined): string {
  if (!kernel) return 'bundled guest';
  const file = kernel.slice(kernel.lastIndexOf('/') + 1);
  return /^u-?boot(\.elf|\.bin)?$/i.test(file) ? 'U-Boot' : 'custom kernel';
}

/** " · 2 NICs" for a list item's line; nothing for none. */
function counted(n: number, what: string): string {
  return n === 0 ? '' : ` · ${n} ${what}${n === 1 ? '' : 's'}`;
}

function renderTabs(): void {
  const el = $('#tabs');
  clear(el);
  tabs.forEach((key, i) => {
    const { name, stream } = splitKey(key);
    const st = vms.get(name)?.state ?? 'stopped';
    el.append(
      h(
        'div',
        {
          class: `tab${key === activeTab ? ' active' : ''}`,
          'data-tab': key,
          'data-vm': name,
          'data-stream': stream,
          role: 'tab',
          title: i < 9 ? `Alt+${i + 1}` : undefined,
          onclick: () => void selectTab(key),
        },
        h('span', { class: `dot dot-${st}` }),
        name,
        h('span', { class: 'tab-stream' }, ` · ${stream}`),
        h(
          'button',
          {
            class: 'tab-close',
            title: 'Close console (Alt+W) — the VM keeps running',
            'aria-label': `close ${name} ${stream}`,
            onclick: (e: Event) => (e.stopPropagation(), void closeTab(key)),
          },
          '×',
        ),
      ),
    );
  });
}

function showDevices(name: string): void {
  renderDevices($('#devices'), devices.get(name) ?? [], {
    running: isUp(vms.get(name)?.state),
    outcomes: outcomes.get(name),
    onControl: (device, control, value) => void setControl(name, device, control, value),
    paused: vms.get(name)?.state === 'paused',
    onSnapshot: (device, action, snapshot) => void snapshotOp(name, device, action, snapshot),
    onOverlay: (device, image) => void overlayOp(name, device, image),
  });
  showDeviceIo($('#devices'), stats.get(name)?.at(-1));
}

/** "Create overlay…": asks for the file, switches the disk; the answer shows under the disk. */
async function overlayOp(name: string, device: string, image: string): Promise<void> {
  const file = await askOverlayPath(device, image);
  if (file === undefined) return;
  await deviceOp(name, device, `switching to ${file}…`, true, () =>
    host.call('diskOverlay', { name, device, file }),
  );
}

/**
 * One operation on a device: "busy" under the device while it runs, then its answer (or why
 * not, also as a toast). `refresh` re-reads the device rows first (the operation changed them).
 */
async function deviceOp(
  name: string,
  device: string,
  busyText: string,
  refresh: boolean,
  op: () => Promise<{ message: string }>,
): Promise<void> {
  let m = outcomes.get(name);
  if (!m) outcomes.set(name, (m = new Map()));
  m.set(device, { ok: true, busy: true, text: busyText });
  if (name === selected) showDevices(name);
  try {
    const r = await op();
    m.set(device, { ok: true, text: r.message });
  } catch (e) {
    m.set(device, { ok: false, text: (e as Error).message });
    toast((e as Error).message);
  }
  if (refresh) await refreshDevices(name);
  if (name === selected) showDevices(name);
}

function showSnapshots(name: string): void {
  const outcome = snapshotOutcomes.get(name);
  renderSnapshots($('#vm-snapshots'), snapshots.get(name) ?? [], {
    running: isUp(vms.get(name)?.state),
    busy: outcome?.busy === true,
    ...(outcome ? { outcome } : {}),
    onAction: (action, snapshot) => void vmSnapshotOp(name, action, snapshot),
  });
}

async function refreshSnapshots(name: string): Promise<void> {
  try {
    snapshots.set(name, await host.call('listSnapshots', { name }));
    if (name === selected) showSnapshots(name);
  } catch {
    /* the VM went away meanwhile */
  }
}

const SNAPSHOT_VERB: Record<VmSnapshotAction, string> = {
  take: 'taking',
  revert: 'reverting to',
  delete: 'deleting',
};

/** Takes, reverts to or deletes a VM snapshot; the outcome shows under the list. */
async function vmSnapshotOp(
  name: string,
  action: VmSnapshotAction,
  snapshot: string,
): Promise<void> {
  snapshotOutcomes.set(name, {
    ok: true,
    busy: true,
    text: `${SNAPSHOT_VERB[action]} ${snapshot}…`,
  });
  if (name === selected) showSnapshots(name);
  try {
    if (action === 'revert' && !isUp(vms.get(name)?.state)) {
      // A stopped VM starts from the snapshot, as Start does (passphrases asked for first).
      await startVm(name, false, snapshot);
      snapshotOutcomes.set(name, {
        ok: true,
        text: `"${name}" starts from snapshot "${snapshot}"`,
      });
    } else {
      const r = await host.call('vmSnapshot', { name, action, snapshot });
      snapshotOutcomes.set(name, { ok: true, text: r.message });
    }
  } catch (e) {
    snapshotOutcomes.set(name, { ok: false, text: (e as Error).message });
    toast((e as Error).message);
  }
  await refreshSnapshots(name);
  if (name === selected) showSnapshots(name);
}

/** A disk snapshot operation (VM paused); the outcome shows under the disk like a control's. */
async function snapshotOp(
  name: string,
  device: string,
  action: DiskSnapshotAction,
  snapshot: string,
): Promise<void> {
  await deviceOp(name, device, `${action} snapshot "${snapshot}"…`, true, () =>
    host.call('diskSnapshot', { name, device, action, snapshot }),
  );
}

/** Changes a device control and shows the device's answer (or why not) under the device. */
async function setControl(
  name: string,
  device: string,
  control: string,
  value: string,
): Promise<void> {
  await deviceOp(name, device, `${control} → ${value}…`, false, () =>
    host.call('setDeviceControl', { name, device, control, value }),
  );
}

function renderDetail(): void {
  const v = selected ? vms.get(selected) : undefined;
  $('#detail').hidden = !v;
  $('#welcome').hidden = !!v;
  if (!v) return;
  const name = v.config.name;
  const toolbar = $('#toolbar');
  clear(toolbar);
  const last = stats.get(name)?.at(-1);
  toolbar.append(
    h('h1', {}, name),
    h('span', { class: `pill pill-${v.state}`, 'data-vm-state': v.state }, stateLabel(v)),
    h(
      'span',
      { class: 'toolbar-meta' },
      v.state === 'starting' && v.incoming
        ? waitingText(v.incoming)
        : isUp(v.state) && last
          ? metaText(last)
          : exitText(v),
    ),
    h('span', { class: 'spacer' }),
    ...vmButtons(name, v.state),
    button('Edit', 'edit', () => void editVm(name)),
    button('Delete', 'delete', () => void deleteVm(name), { danger: true }),
  );
  showDevices(name);
  showSnapshots(name);
  charts.show(stats.get(name) ?? []);
}

/** Shows a VM: opens a tab for each of its consoles and shows the one last used there. */
async function select(name: string): Promise<void> {
  const keys = streamsOf(name).map((st) => tabKey(name, st));
  const missing = keys.filter((k) => !tabs.includes(k));
  if (missing.length) {
    // Next to the VM's other tabs, if it has some; else at the end.
    let at = tabs.length;
    tabs.forEach((k, i) => splitKey(k).name === name && (at = i + 1));
    tabs.splice(at, 0, ...missing);
  }
  const last = lastTab.get(name);
  await selectTab(last && tabs.includes(last) ? last : keys[0]!);
}

async function selectTab(key: string): Promise<void> {
  const { name, stream } = splitKey(key);
  selected = name;
  activeTab = key;
  lastTab.set(name, key);
  let view = consoles.get(key);
  if (!view) {
    view = new ConsoleView(name, stream, host);
    consoles.set(key, view);
  }
  for (const c of consoles.values()) c.element.hidden = c !== view;
  renderList();
  renderTabs();
  renderDetail();
  await act(view.open($('#console-host')));
  view.focus();
  void refreshDevices(name);
  void refreshSnapshots(name);
}

async function closeTab(key: string): Promise<void> {
  const i = tabs.indexOf(key);
  if (i < 0) return;
  tabs.splice(i, 1);
  const v = consoles.get(key);
  consoles.delete(key);
  await v?.detach();
  if (activeTab === key) {
    const next = tabs[Math.min(i, tabs.length - 1)];
    if (next) void selectTab(next);
    else {
      selected = activeTab = undefined;
      renderList();
      renderTabs();
      renderDetail();
    }
  } else renderTabs();
}

/** Closes every console tab of a VM (it was deleted or renamed). */
async function closeVmTabs(name: string): Promise<void> {
  for (const k of tabs.filter((t) => splitKey(t).name === name)) await closeTab(k);
}

/** Drops tabs of consoles a VM no longer has (its console type was edited). */
function pruneTabs(): void {
  for (const k of tabs) {
    const { name, stream } = splitKey(k);
    if (vms.has(name) && !streamsOf(name).includes(stream)) void closeTab(k);
  }
}

async function refreshDevices(name: string): Promise<void> {
  try {
    devices.set(name, await host.call('listDevices', { name }));
    if (name === selected) showDevices(name);
  } catch {
    /* the VM went away meanwhile */
  }
}

async function editVm(name: string): Promise<void> {
  const v = vms.get(name);
  if (!v) return;
  if (isUp(v.state)) return toast(`Stop ${name} before editing it.`, 'info');
  await editVmDialog(
    v.config,
    async (cfg) => {
      const r = await host.call('updateVm', { name, config: cfg });
      if (r.config.name !== name) await closeVmTabs(name);
    },
    (p) => host.call('createDiskImage', p),
  );
}

async function deleteVm(name: string): Promise<void> {
  if (!confirm(`Delete the definition of ${name}? (Its disk images are not touched.)`)) return;
  await act(host.call('deleteVm', { name }));
  await closeVmTabs(name);
}

function pushStats(name: string, s: VmStats): void {
  let arr = stats.get(name);
  if (!arr) stats.set(name, (arr = []));
  arr.push(s);
  const cutoff = s.t - HISTORY_SECONDS * 1000;
  while (arr.length && arr[0]!.t < cutoff) arr.shift();
}

host.onEvent((e) => {
  switch (e.type) {
    case 'console':
      consoles.get(tabKey(e.name, e.stream))?.write(e.data);
      return;
    case 'stats':
      pushStats(e.name, e.stats);
      if (e.name === selected) {
        charts.show(stats.get(e.name)!);
        const meta = document.querySelector('#toolbar .toolbar-meta');
        if (meta) meta.textContent = metaText(e.stats);
        showDeviceIo($('#devices'), e.stats);
      }
      return;
    case 'state': {
      const v = vms.get(e.name);
      if (!v) return;
      v.state = e.state;
      v.lastExit = e.lastExit;
      v.incoming = e.incoming;
      if (e.state === 'running') void refreshDevices(e.name);
      if (e.state === 'stopped') void refreshDevices(e.name);
      renderList();
      renderTabs();
      if (e.name === selected) renderDetail();
      return;
    }
    case 'vms':
      vms.clear();
      for (const v of e.vms) vms.set(v.config.name, v);
      if (selected && !vms.has(selected)) selected = undefined;
      pruneTabs();
      renderList();
      renderTabs();
      renderDetail();
      return;
    case 'devices':
      devices.set(e.name, e.devices);
      if (e.name === selected) showDevices(e.name);
      return;
    case 'log':
      toast(`${e.name}: ${e.message}`, 'info');
      return;
    case 'snapshots':
      snapshots.set(e.name, e.snapshots);
      if (e.name === selected) showSnapshots(e.name);
      return;
  }
});

host.onConnection(async (up) => {
  document.body.classList.toggle('disconnected', !up);
  if (!up) return;
  const list = await host.call('listVms');
  vms.clear();
  for (const v of list) vms.set(v.config.name, v);
  for (const v of list)
    if (isUp(v.state))
      stats.set(v.config.name, await host.call('statsHistory', { name: v.config.name }));
  const errors = await host.call('definitionErrors');
  const banner = $('#banner');
  banner.hidden = !errors.length;
  clear(banner);
  for (const e of errors) banner.append(h('div', {}, `Skipped a VM definition: ${e.message}`));
  for (const c of consoles.values()) await act(c.attach());
  if (!selected && list.length) {
    const first = list.find((v) => isUp(v.state)) ?? list[0]!;
    void select(first.config.name);
  } else {
    renderList();
    renderTabs();
    renderDetail();
  }
});

$('#new-vm').addEventListener('click', () => {
  void editVmDialog(
    undefined,
    async (cfg) => {
      await host.call('createVm', { config: cfg });
    },
    (p) => host.call('createDiskImage', p),
  );
});
$('#theme-toggle').addEventListener('click', toggleTheme);

// Keyboard: Alt+1..9 switch console tabs, Alt+W closes one, Alt+T toggles the theme.
document.addEventListener('keydown', (e) => {
  if (!e.altKey || e.ctrlKey || e.metaKey) return;
  if (/^[1-9]$/.test(e.key) && tabs[Number(e.key) - 1]) {
    e.preventDefault();
    void selectTab(tabs[Number(e.key) - 1]!);
  } else if (e.key.toLowerCase() === 'w' && activeTab) {
    e.preventDefault();
    void closeTab(activeTab);
  } else if (e.key.toLowerCase() === 't') {
    e.preventDefault();
    toggleTheme();
  }
});

// For end-to-end tests: the console text as xterm holds it (its DOM shows only visible rows).
(window as unknown as { wasmvisorDebug: unknown }).wasmvisorDebug = {
  consoleText: (name: string, stream?: ConsoleStream) =>
    consoles.get(tabKey(name, stream ?? streamsOf(name)[0]!))?.text() ?? '',
};
