/** The device list rows the host API shows, from the board's DeviceInfo. */
import type { DeviceInfo } from '../../devices/platform/board.js';
import type { DeviceRow } from '../host/api-types.js';

/** What serves each board device on the host side (the devices with switchable back ends bring their own). */
const BOARD_BACKENDS: Record<string, string> = {
  uart0: 'console stream (host API)',
  rtc: 'host wall clock',
  test: 'VM power control',
};

export function deviceRows(devices: DeviceInfo[], state: string): DeviceRow[] {
  return devices.map((d) => ({
    name: d.name,
    model: d.model,
    address: '0x' + d.base.toString(16).padStart(8, '0'),
    size: d.size,
    irq: d.irq,
    backend:
      BOARD_BACKENDS[d.name] ?? (d.location === 'core' ? 'in the Wasm core' : 'TypeScript model'),
    state,
  }));
}
