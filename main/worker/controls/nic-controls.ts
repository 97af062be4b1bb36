/**
 * A network card's live controls (e1000 and virtio-net alike, through its NetPort):
 *   - link: the cable, on/off (the monitor's `set_link NIC on|off`); the guest's driver sees
 *     the carrier change (e1000 LSC interrupt, virtio-net STATUS + configuration interrupt);
 *   - backend: `none`, `user[,...]` or `switch:NAME` (any name), moved while the guest runs;
 *     recorded in the worker's definition, so a reset keeps it;
 *   - capture: `off`, `on` (a new pcap file under the host's data dir, `captures/`), or an
 *     absolute path to write. Starting, switching and stopping lose no frame (NetPort swaps the
 *     writer synchronously). A capture ends with the machine (reset, stop).
 * The link setting is not part of the definition: after a reset the cable is plugged in again.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { DeviceControl } from '../../host/api-types.js';
import { userDataDir } from '../../host/data-dir.js';
import type { Nic } from '../../vm/nics.js';
import type { ControlContext, DeviceControlProvider } from '../device-controls.js';
import { ControlError } from '../device-controls.js';

const BACKEND_RE = '^(switch:[\\w.-]{1,64}|user(,(restrict|hostfwd|tftp|bootfile)=[^,]+)*)$';
/** An absolute path: POSIX, or a Windows drive path. */
const PATH_RE = '^(/|[A-Za-z]:[\\\\/])[^\\u0000]*$';

function find(device: string, ctx: ControlContext): { nic: Nic; index: number } | undefined {
  const index = ctx.machine.nics.findIndex((n) => n.name === device);
  return index < 0 ? undefined : { nic: ctx.machine.nics[index], index };
}

/** A file name for a capture started with `on`: VM, NIC and the time, sortable. */
export function captureFileName(vm: string, nic: string, now = new Date()): string {
  const t = now.toISOString().replace(/[:.]/g, '-');
  return `${vm}-${nic}-${t}.pcap`.replace(/[^\w.-]/g, '_');
}

export const nicControls: DeviceControlProvider = {
  describe(device, ctx): DeviceControl[] | undefined {
    const f = find(device, ctx);
    if (!f) return undefined;
    const p = f.nic.port;
    const spec = p.backendSpec;
    const switches = new Set<string>(['none', 'user']);
    if (spec !== 'none') switches.add(spec);
    for (const n of ctx.config.nics ?? []) if (n.net !== 'none') switches.add(n.net);
    const capturing = p.capturePath;
    const captureOptions = [
      { value: 'off', label: 'off' },
      { value: 'on', label: 'on (new file in captures/)' },
    ];
    if (capturing) captureOptions.push({ value: capturing, label: capturing });
    return [
      {
        id: 'link',
        label: 'Link',
        options: [
          { value: 'on', label: 'up (cable plugged in)' },
          { value: 'off', label: 'down (cable pulled)' },
        ],
        value: p.linkUp ? 'on' : 'off',
        note: p.linkUp && !p.carrier ? `no carrier: back end ${spec}` : undefined,
      },
      {
        id: 'backend',
        label: 'Network',
        options: [...switches].map((s) => ({
          value: s,
          label: s === 'none' ? 'none (no cable)' : s,
        })),
        value: spec,
        free: {
          pattern: BACKEND_RE,
          hint: 'switch:NAME or user[,hostfwd=tcp::PORT-:PORT][,hostfwd=tcp:[::1]:PORT-:PORT]',
        },
      },
      {
        id: 'capture',
        label: 'Capture',
        options: captureOptions,
        value: capturing ?? 'off',
        note: capturing ? `pcap: ${capturing}` : undefined,
        free: { pattern: PATH_RE, hint: 'an absolute path for the pcap file' },
      },
    ];
  },

  async apply(device, control, value, ctx): Promise<string> {
    const f = find(device, ctx);
    if (!f) throw new ControlError(`${device}: no such network card`);
    const p = f.nic.port;
    switch (control) {
      case 'link':
        p.setLink(value === 'on');
        return `${device}: link ${value === 'on' ? 'up' : 'down'}`;
      case 'backend': {
        try {
          p.setBackend(value);
        } catch (e) {
          throw new ControlError(`${device}: ${(e as Error).message}`);
        }
        const cfg = ctx.config.nics?.[f.index];
        if (cfg) cfg.net = value; // a reset keeps it
        const state = p.carrier ? '' : p.linkUp ? ' (no carrier)' : ' (link down)';
        return `${device}: network ${value}${state}`;
      }
      case 'capture': {
        if (value === 'off') {
          const was = p.capturePath;
          await p.stopCapture();
          return was ? `${device}: capture stopped, ${was} complete` : `${device}: no capture`;
        }
        if (value === p.capturePath) return `${device}: already capturing to ${value}`;
        let path = value;
        try {
          if (value === 'on') {
            const dir = join(ctx.dataDir ?? userDataDir(), 'captures');
            await mkdir(dir, { recursive: true });
            path = join(dir, captureFileName(ctx.config.name, device));
          }
          await p.startCapture(path);
        } catch (e) {
          throw new ControlError(`${device}: cannot capture to ${path}: ${(e as Error).message}`);
        }
        return `${device}: capturing to ${path}`;
      }
      default:
        throw new ControlError(`${device}: no such network control`);
    }
  },
};
