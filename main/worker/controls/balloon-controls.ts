/**
 * The balloon's live control: the guest's memory size target (QEMU's `balloon MIB`). The balloon
 * takes the rest; the guest's driver inflates or deflates towards it within seconds. The options
 * are steps of RAM (16 MiB, or RAM/32 on large guests) plus the current target, so the UI shows
 * a short list; the control's range takes any whole MiB from 1 to RAM besides, so the monitor's
 * `balloon MIB` accepts any size, as QEMU's does.
 */
import { VirtioBalloon } from '../../../devices/virtio/index.js';
import type { DeviceControl } from '../../host/api-types.js';
import type { ControlContext, DeviceControlProvider } from '../device-controls.js';
import { ControlError } from '../device-controls.js';

const MIB = 1024 * 1024;

function find(device: string, ctx: ControlContext): VirtioBalloon | undefined {
  const b = ctx.machine.balloon;
  return b instanceof VirtioBalloon && b.name === device ? b : undefined;
}

/** Target steps in MiB for a guest of `ramMiB`: 16 MiB steps, at most 32 of them (and RAM). */
export function balloonSteps(ramMiB: number): number[] {
  let step = 16;
  while (ramMiB / step > 32) step *= 2;
  const out: number[] = [];
  for (let m = step; m < ramMiB; m += step) out.push(m);
  out.push(ramMiB);
  return out;
}

export const balloonControls: DeviceControlProvider = {
  describe(device, ctx): DeviceControl[] | undefined {
    const b = find(device, ctx);
    if (!b) return undefined;
    const i = b.info();
    const ramMiB = i.ramBytes / MIB;
    const target = Math.round((i.ramBytes - i.targetBytes) / MIB);
    const steps = balloonSteps(ramMiB);
    if (!steps.includes(target)) steps.push(target);
    steps.sort((a, b2) => b2 - a);
    return [
      {
        id: 'target',
        label: 'Guest memory',
        options: steps.map((m) => ({
          value: String(m),
          label: m === ramMiB ? `${m} MiB (balloon empty)` : `${m} MiB`,
        })),
        value: String(target),
        range: { min: 1, max: ramMiB, unit: 'MiB' },
        note: i.returnedToHost
          ? `balloon ${Math.round(i.actualBytes / MIB)} MiB`
          : `balloon ${Math.round(i.actualBytes / MIB)} MiB; ${i.notReturned}`,
      },
    ];
  },

  async apply(device, control, value, ctx): Promise<string> {
    if (!find(device, ctx) || control !== 'target') {
      throw new ControlError(`${device}: no such balloon control`);
    }
    const mib = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(mib)) {
      throw new ControlError(`${device}: guest memory must be a whole number of MiB`);
    }
    try {
      ctx.machine.setBalloonTarget(mib);
    } catch (e) {
      throw new ControlError((e as Error).message);
    }
    return `${device}: guest memory target ${value} MiB`;
  },
};
