/**
 * The device manager: every device the guest sees, with model, address, IRQ, back end, state,
 * and under a device its live controls. Controls come from the device row (each device type
 * declares its own), so this view draws a NIC's or the balloon's the same way as a disk's.
 */
import type { DeviceControl, DeviceRow } from '../../main/host/api-types.js';
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
  if (!d.controls?.length) return undefined;
  const outcome = o.outcomes?.get(d.name);
  const notes = d.controls.filter((c) => c.note).map((c) => `${c.label}: ${c.note}`);
  return h(
    'tr',
    { class: 'dev-controls', 'data-controls-for': d.name },
    h(
      'td',
      { colspan: 6 },
      h(
        'div',
        { class: 'controls' },
        ...d.controls.map((c) => controlField(d, c, o, outcome?.busy === true)),
      ),
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
        h('td', {}, h('span', { class: `pill pill-${d.state}` }, d.state)),
      ),
    );
    if (ctl) body.append(ctl);
  }
  table.append(body);
}
