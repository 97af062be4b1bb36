/**
 * A shared folder's live control: access, read-write or read-only, switched while the guest
 * runs (from its next request on; a file the guest opened for writing refuses its next write,
 * as a disk switched read-only does). Recorded in the worker's definition, so a reset keeps it;
 * the definition on disk is not changed. (Whether the guest has it mounted is the row's state;
 * its file I/O is in the stats, read_bytes/write_bytes, charted with the disks'.)
 */
import type { DeviceControl } from '../../host/api-types.js';
import type { ControlContext, DeviceControlProvider } from '../device-controls.js';
import { ControlError } from '../device-controls.js';

function find(device: string, ctx: ControlContext) {
  const index = ctx.machine.shares.findIndex((s) => s.name === device);
  return index < 0 ? undefined : { share: ctx.machine.shares[index]!, index };
}

export const shareControls: DeviceControlProvider = {
  describe(device, ctx): DeviceControl[] | undefined {
    const f = find(device, ctx);
    if (!f) return undefined;
    const s = f.share;
    return [
      {
        id: 'access',
        label: 'Access',
        options: [
          { value: 'rw', label: 'read-write' },
          { value: 'ro', label: 'read-only' },
        ],
        value: s.readOnly ? 'ro' : 'rw',
      },
    ];
  },

  async apply(device, control, value, ctx): Promise<string> {
    const f = find(device, ctx);
    if (!f || control !== 'access') throw new ControlError(`${device}: no such share control`);
    const ro = value === 'ro';
    f.share.readOnly = ro;
    const shares = ctx.config.shares;
    const entry = shares?.[f.index];
    if (shares && entry) {
      shares[f.index] = ro ? { ...entry, readOnly: true } : { path: entry.path, tag: entry.tag };
    }
    return `${device}: ${f.share.root} is ${ro ? 'read-only' : 'read-write'} for the guest`;
  },
};
