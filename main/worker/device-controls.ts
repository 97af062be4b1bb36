/**
 * Live device controls, declared per device type. Each provider says which controls a device
 * row offers (the renderer draws them without knowing the device) and applies a change, with a
 * one-line outcome for the UI. A device type adds its controls by adding a provider to
 * CONTROL_PROVIDERS (NICs: link, back end, capture; the balloon: target; shared folders: access) — nothing else changes.
 */
import { controlAccepts, controlExpects } from '../host/api-types.js';
import type { DeviceControl, DeviceRow } from '../host/api-types.js';
import type { VirtMachine } from '../vm/machine.js';
import type { VmConfig } from '../vm/config.js';
import { diskControls } from './controls/disk-controls.js';
import { balloonControls } from './controls/balloon-controls.js';
import { nicControls } from './controls/nic-controls.js';
import { shareControls } from './controls/share-controls.js';

/** A change the device refused (bad value, unsupported here): the message goes to the UI. */
export class ControlError extends Error {}

export interface ControlContext {
  machine: VirtMachine;
  /**
   * The worker's copy of the VM definition: a provider records lasting changes here, so the
   * machine that a reset rebuilds keeps them (the definition on disk is not changed).
   */
  config: VmConfig;
  /** The host's data directory (captures started without a path go under it); default: ours. */
  dataDir?: string;
}

export interface DeviceControlProvider {
  /** The controls of `device` (a device row's name), or undefined when it is not this type. */
  describe(device: string, ctx: ControlContext): DeviceControl[] | undefined;
  /**
   * Applies one control; resolves to the outcome ("scheduler: deadline"), rejects with
   * ControlError. Only called for devices whose describe() listed `control`.
   */
  apply(device: string, control: string, value: string, ctx: ControlContext): Promise<string>;
}

export const CONTROL_PROVIDERS: DeviceControlProvider[] = [
  diskControls,
  balloonControls,
  nicControls,
  shareControls,
];

/** Adds each row's controls (rows of devices without any stay as they are). */
export function withControls(
  rows: DeviceRow[],
  ctx: ControlContext,
  providers: readonly DeviceControlProvider[] = CONTROL_PROVIDERS,
): DeviceRow[] {
  return rows.map((r) => {
    const controls = providers.flatMap((p) => p.describe(r.name, ctx) ?? []);
    return controls.length ? { ...r, controls } : r;
  });
}

/** Validates the request against what the device declares, then applies it. */
export async function applyControl(
  device: string,
  control: string,
  value: string,
  ctx: ControlContext,
  providers: readonly DeviceControlProvider[] = CONTROL_PROVIDERS,
): Promise<string> {
  for (const p of providers) {
    const c = p.describe(device, ctx)?.find((x) => x.id === control);
    if (!c) continue;
    if (!controlAccepts(c, value)) {
      throw new ControlError(`${device}: ${c.label} must be ${controlExpects(c)}`);
    }
    return p.apply(device, control, value, ctx);
  }
  throw new ControlError(`${device} has no control "${control}"`);
}
