/** The device manager: every device the guest sees, with model, address, IRQ, back end, state. */
import type { DeviceRow } from '../../main/host/api-types.js';
import { clear, h } from './dom.js';

export function renderDevices(table: HTMLTableElement, rows: DeviceRow[], running: boolean): void {
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
          running ? 'Loading…' : 'Start the VM to see its devices.',
        ),
      ),
    );
  }
  for (const d of rows) {
    body.append(
      h(
        'tr',
        { 'data-device': d.name },
        h('td', { class: 'dev-name' }, d.name),
        h('td', {}, h('code', {}, d.model)),
        h('td', {}, h('code', {}, d.address)),
        h('td', {}, d.irq === undefined ? '—' : String(d.irq)),
        h('td', {}, d.backend),
        h('td', {}, h('span', { class: `pill pill-${d.state}` }, d.state)),
      ),
    );
  }
  table.append(body);
}
