/**
 * The device manager: every device the guest sees, with model, address, IRQ, back end, state,
 * and under a device its live controls. Controls come from the device row (each device type
 * declares its own), so this view draws a NIC's or the balloon's the same way as a disk's.
 */
import type {
  DeviceControl,
  DeviceRow,
  DiskImageInfo,
  DiskIoStats,
  DiskSnapshotAction,
  NicIoStats,
  VmStats,
} from '../../main/host/api-types.js';
import { clear, h } from './dom.js';

/** The last outcome of a control change, shown under the device until the next change. */
export interface ControlOutcome {
  ok: boolean;
  text: string;
  /** Set while the change is on its way. */
  busy?: boolean;
}

export interface DevicesViewOptions {
  running: boolean;
  /** Outcomes by device name. */
  outcomes?: ReadonlyMap<string, ControlOutcome>;
  onControl?(device: string, control: string, value: string): void;
  /** Snapshot buttons work only while the VM is paused. */
  paused?: boolean;
  onSnapshot?(device: string, action: DiskSnapshotAction, snapshot: string): void;
  /** "Create overlay…" under a disk (the VM running): switch it to a new qcow2 overlay. */
  onOverlay?(device: string, image: string): void;
}

/** Sizes as the device manager shows them: "64 MiB". */
function size(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : Number(n.toPrecision(3))} ${units[i]}`;
}

/** A disk's image: format, sizes, backing chain, and its internal snapshots with their buttons. */
function diskPanel(d: DeviceRow, disk: DiskImageInfo, o: DevicesViewOptions, busy: boolean) {
  const can = !busy && o.paused === true && !!o.onSnapshot;
  const why = o.paused ? undefined : 'pause the VM to change snapshots';
  const facts = [
    `${disk.format} ${disk.path}${disk.temporary ? ' (temporary overlay)' : ''}`,
    `virtual ${size(disk.virtualSize)}`,
    `on disk ${size(disk.actualSize)}`,
    disk.backingChain.length ? `backing: ${disk.backingChain.join(' → ')}` : undefined,
    disk.encryption ? `encrypted: ${disk.encryption}` : undefined,
    disk.cor ? `copy-on-read: ${disk.cor.clusters} clusters copied` : undefined,
  ].filter((x) => x !== undefined);
  // An overlay only for a disk the guest writes to in the clear (the host refuses the rest).
  const ro = d.controls?.some((c) => c.id === 'readOnly' && c.value === 'on') === true;
  const overlayable = !disk.temporary && !disk.encryption && !ro;
  const overlay = overlayable
    ? h(
        'button',
        {
          type: 'button',
          'data-disk-action': 'overlay',
          disabled: busy || !o.running || !o.onOverlay,
          title: 'Switch this disk to a new qcow2 file over its image, while the VM runs',
          onclick: () => o.onOverlay?.(d.name, disk.path),
        },
        'Create overlay…',
      )
    : undefined;
  const panel = h(
    'div',
    { class: 'disk-info', 'data-disk': d.name },
    h('div', { class: 'disk-facts' }, facts.join(' · ')),
    // Filled by showDeviceIo with each stats sample, in place (the panel is not redrawn).
    h('div', { class: 'disk-io', 'data-disk-io': d.name }),
    overlay ? h('div', { class: 'disk-actions' }, overlay) : undefined,
  );
  if (!disk.snapshots) return panel;
  const btn = (action: DiskSnapshotAction, snap: string, label: string) =>
    h(
      'button',
      {
        type: 'button',
        'data-snapshot-action': action,
        disabled: !can,
        title: why,
        onclick: () => o.onSnapshot?.(d.name, action, snap),
      },
      label,
    );
  const input = h('input', {
    type: 'text',
    placeholder: 'snapshot name',
    'aria-label': `${d.name} new snapshot name`,
    maxlength: 256,
    disabled: !can,
  });
  const create = h(
    'button',
    {
      type: 'button',
      'data-snapshot-action': 'create',
      disabled: !can,
      title: why,
      onclick: () => input.value.trim() && o.onSnapshot?.(d.name, 'create', input.value.trim()),
    },
    'Create snapshot',
  );
  panel.append(
    h(
      'table',
      { class: 'snapshots' },
      h(
        'tbody',
        {},
        ...disk.snapshots.map((s) =>
          h(
            'tr',
            { 'data-snapshot': s.name },
            h('td', {}, s.id),
            h('td', {}, s.name),
            h('td', {}, new Date(s.dateSec * 1000).toLocaleString()),
            h('td', {}, btn('apply', s.name, 'Apply'), btn('delete', s.name, 'Delete')),
          ),
        ),
        disk.snapshots.length === 0
          ? h('tr', {}, h('td', { colspan: 4, class: 'empty' }, 'No snapshots.'))
          : undefined,
      ),
    ),
    h('div', { class: 'snapshot-create' }, input, create),
  );
  return panel;
}

const us = (n: number): string =>
  n >= 1000 ? `${Number((n / 1000).toPrecision(2))} ms` : `${Math.round(n)} µs`;

/** One line of a disk's I/O: requests, bytes, reads served at once, latency, queue depth. */
export function diskIoText(s: DiskIoStats): string {
  const hostReads = s.readsAtOnce + s.readsQueued;
  return [
    `${s.reads} reads (${size(s.bytesRead)})`,
    `${s.writes} writes (${size(s.bytesWritten)})`,
    `${s.flushes} flushes`,
    hostReads > 0
      ? `${hostReads} host reads, ${Math.round((s.readsAtOnce / hostReads) * 100)}% at once from the page cache`
      : undefined,
    `latency p50 ${us(s.latencyUs.p50)}, p99 ${us(s.latencyUs.p99)}`,
    `queue depth ≤ ${s.maxQueueDepth}`,
    s.errors > 0 ? `${s.errors} errors` : undefined,
  ]
    .filter((x) => x !== undefined)
    .join(' · ');
}

const count = (n: number): string => n.toLocaleString('en-US');

/**
 * One line of a NIC's traffic and its cost to the guest: exits and interrupts, also per MiB
 * once a MiB has moved (where e1000 and virtio-net differ most).
 */
export function nicIoText(s: NicIoStats): string {
  const mib = (s.txBytes + s.rxBytes) / 2 ** 20;
  const perMiB = (n: number) => (n / mib < 10 ? (n / mib).toFixed(1) : count(Math.round(n / mib)));
  return [
    `tx ${size(s.txBytes)} (${count(s.txFrames)} frames)`,
    `rx ${size(s.rxBytes)} (${count(s.rxFrames)} frames)`,
    `${count(s.exits)} exits, ${count(s.interrupts)} interrupts`,
    mib >= 1 ? `per MiB ${perMiB(s.exits)} exits, ${perMiB(s.interrupts)} interrupts` : undefined,
    s.dropped > 0 ? `${count(s.dropped)} frames dropped` : undefined,
  ]
    .filter((x) => x !== undefined)
    .join(' · ');
}

/**
 * Writes each disk's and each NIC's I/O line under `root` (diskPanel and controlsRow leave
 * empty places for them), from the latest stats sample, in place.
 */
export function showDeviceIo(root: ParentNode, stats: VmStats | undefined): void {
  root.querySelectorAll<HTMLElement>('.disk-io[data-disk-io]').forEach((el) => {
    const s = stats?.disks?.[el.dataset.diskIo ?? ''];
    el.textContent = s ? `I/O: ${diskIoText(s)}` : '';
    el.title = s?.readsAtOnceUnavailable ? `reads never at once: ${s.readsAtOnceUnavailable}` : '';
  });
  root.querySelectorAll<HTMLElement>('.nic-io[data-nic-io]').forEach((el) => {
    const s = stats?.nics?.[el.dataset.nicIo ?? ''];
    el.textContent = s ? `I/O: ${nicIoText(s)}` : '';
  });
}

function controlField(
  d: DeviceRow,
  c: DeviceControl,
  o: DevicesViewOptions,
  busy: boolean,
): HTMLElement {
  const select = h(
    'select',
    {
      'data-control': c.id,
      'aria-label': `${d.name} ${c.label}`,
      disabled: busy || !o.running || !o.onControl,
      onchange: (e: Event) => o.onControl?.(d.name, c.id, (e.target as HTMLSelectElement).value),
    },
    ...c.options.map((opt) =>
      h('option', { value: opt.value, selected: opt.value === c.value }, opt.label),
    ),
  );
  return h(
    'label',
    { class: 'control', title: c.note },
    h('span', { class: 'control-label' }, c.label),
    select,
  );
}

function controlsRow(d: DeviceRow, o: DevicesViewOptions): HTMLElement | undefined {
  if (!d.controls?.length && !d.disk) return undefined;
  const outcome = o.outcomes?.get(d.name);
  const controls = d.controls ?? [];
  const notes = controls.filter((c) => c.note).map((c) => `${c.label}: ${c.note}`);
  return h(
    'tr',
    { class: 'dev-controls', 'data-controls-for': d.name },
    h(
      'td',
      { colspan: 6 },
      h(
        'div',
        { class: 'controls' },
        ...controls.map((c) => controlField(d, c, o, outcome?.busy === true)),
      ),
      d.disk ? diskPanel(d, d.disk, o, outcome?.busy === true) : undefined,
      // A network card's traffic and cost, filled by showDeviceIo.
      controls.some((c) => c.id === 'link')
        ? h('div', { class: 'nic-io', 'data-nic-io': d.name })
        : undefined,
      ...notes.map((n) => h('div', { class: 'control-note' }, n)),
      outcome
        ? h(
            'div',
            {
              class: `control-outcome ${outcome.busy ? 'busy' : outcome.ok ? 'ok' : 'error'}`,
              role: 'status',
            },
            outcome.text,
          )
        : undefined,
    ),
  );
}

/**
 * The pill's class for a state: its first part as one word ("active, packed rings" and
 * "active" are both pill-active; "needs reset" is pill-needs-reset).
 */
function stateClass(state: string): string {
  return `pill-${state.split(',')[0]!.trim().replace(/\s+/g, '-')}`;
}

export function renderDevices(
  table: HTMLTableElement,
  rows: DeviceRow[],
  opts: DevicesViewOptions | boolean,
): void {
  const o: DevicesViewOptions = typeof opts === 'boolean' ? { running: opts } : opts;
  clear(table);
  table.append(
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', {}, 'Device'),
        h('th', {}, 'Model'),
        h('th', {}, 'Address'),
        h('th', {}, 'IRQ'),
        h('th', {}, 'Back end'),
        h('th', {}, 'State'),
      ),
    ),
  );
  const body = h('tbody');
  if (!rows.length) {
    body.append(
      h(
        'tr',
        {},
        h(
          'td',
          { colspan: 6, class: 'empty' },
          o.running ? 'Loading…' : 'Start the VM to see its devices.',
        ),
      ),
    );
  }
  for (const d of rows) {
    const ctl = controlsRow(d, o);
    body.append(
      h(
        'tr',
        { 'data-device': d.name, class: ctl ? 'has-controls' : undefined },
        h('td', { class: 'dev-name' }, d.name),
        h('td', {}, h('code', {}, d.model)),
        h('td', {}, h('code', {}, d.address)),
        h('td', {}, d.irq === undefined ? '—' : String(d.irq)),
        h('td', { class: 'dev-backend' }, d.backend),
        h('td', {}, h('span', { class: `pill ${stateClass(d.state)}` }, d.state)),
      ),
    );
    if (ctl) body.append(ctl);
  }
  table.append(body);
}
