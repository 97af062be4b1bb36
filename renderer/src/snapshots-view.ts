/**
 * The VM's Snapshots section: take one by name while the VM runs (it runs on), list them, revert
 * to one (a running VM goes back in place, its console continues; a stopped VM starts from it)
 * or delete one. The whole VM: RAM, CPU, devices, and a qcow2 snapshot of every writable disk.
 */
import type { VmSnapshotAction, VmSnapshotInfo } from '../../main/host/api-types.js';
import { clear, h } from './dom.js';

export interface SnapshotsViewOptions {
  /** The VM runs (or is paused): a snapshot can be taken. */
  running: boolean;
  /** An operation is under way: the buttons wait for it. */
  busy: boolean;
  /** The last operation's outcome, shown under the list. */
  outcome?: { ok: boolean; text: string };
  onAction(action: VmSnapshotAction, snapshot: string): void;
}

/** The name rule of the host (vm-snapshots.ts), so a bad name is refused before it is sent. */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

function disksText(s: VmSnapshotInfo): string {
  if (s.error) return `unusable: ${s.error}`;
  if (s.otherVm) return `of another VM: ${s.otherVm}`;
  if (!s.disks.length) return 'state only (no disks)';
  return s.disks
    .map((d) => {
      const file = d.path.split(/[\\/]/).pop() ?? d.path;
      if (d.id === undefined) return `${file} (read-only)`;
      return `${file} #${d.id}${d.missing ? ' (missing!)' : ''}`;
    })
    .join(', ');
}

export function renderSnapshots(
  el: HTMLElement,
  list: readonly VmSnapshotInfo[],
  o: SnapshotsViewOptions,
): void {
  clear(el);
  const input = h('input', {
    type: 'text',
    placeholder: 'snapshot name',
    'aria-label': 'new VM snapshot name',
    maxlength: 64,
    disabled: !o.running || o.busy,
  });
  const take = (): void => {
    const name = input.value.trim();
    if (NAME.test(name)) o.onAction('take', name);
    else input.setCustomValidity('1-64 letters, digits, "_", "-", "."');
    input.reportValidity();
  };
  input.addEventListener('input', () => input.setCustomValidity(''));
  input.addEventListener('keydown', (e) => (e as KeyboardEvent).key === 'Enter' && take());
  el.append(
    h(
      'div',
      { class: 'vm-snapshot-take' },
      input,
      h(
        'button',
        {
          type: 'button',
          class: 'btn',
          'data-vm-snapshot-action': 'take',
          disabled: !o.running || o.busy,
          title: o.running
            ? 'Take the whole VM now (it runs on): RAM, CPU, devices and its qcow2 disks'
            : 'Start the VM to take a snapshot',
          onclick: take,
        },
        'Take snapshot',
      ),
    ),
  );
  const btn = (action: VmSnapshotAction, s: VmSnapshotInfo, label: string, title: string) =>
    h(
      'button',
      {
        type: 'button',
        class: `btn${action === 'delete' ? ' btn-danger' : ''}`,
        'data-vm-snapshot-action': action,
        disabled: o.busy || (action === 'revert' && !!(s.error || s.otherVm)),
        title,
        onclick: () => {
          if (action === 'delete' && !confirm(`Delete snapshot ${s.name} (state and disks)?`)) {
            return;
          }
          o.onAction(action, s.name);
        },
      },
      label,
    );
  el.append(
    h(
      'table',
      { class: 'vm-snapshots' },
      h(
        'tbody',
        {},
        ...list.map((s) =>
          h(
            'tr',
            { 'data-vm-snapshot': s.name },
            h('td', { class: 'vm-snapshot-name' }, s.name),
            h('td', {}, new Date(s.savedAt).toLocaleString()),
            h('td', {}, mib(s.stateBytes)),
            h('td', { class: 'vm-snapshot-disks' }, disksText(s)),
            h(
              'td',
              { class: 'vm-snapshot-actions' },
              btn(
                'revert',
                s,
                'Revert',
                o.running
                  ? 'Go back to this snapshot (what the VM did since is lost)'
                  : 'Start the VM from this snapshot',
              ),
              btn('delete', s, 'Delete', 'Delete its state file and disk snapshots'),
            ),
          ),
        ),
        list.length === 0
          ? h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'No snapshots.'))
          : undefined,
      ),
    ),
  );
  if (o.outcome) {
    el.append(
      h(
        'div',
        { class: `control-outcome ${o.busy ? 'busy' : o.outcome.ok ? 'ok' : 'error'}` },
        o.outcome.text,
      ),
    );
  }
}
