/**
 * A shared folder's access control on a real machine (no guest running): offered on its device
 * row, switched both ways on the device, recorded in the worker's definition so a reset keeps
 * it; values other than rw/ro are refused before they reach the device.
 */
import { afterAll, describe, it, expect } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtMachine } from '../../../main/vm/machine.js';
import { defaultVmConfig, type VmConfig } from '../../../main/vm/config.js';
import { applyControl, withControls, ControlError } from '../../../main/worker/device-controls.js';

const dir = mkdtempSync(join(tmpdir(), 'wv-share-ctl-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function ctx() {
  const config: VmConfig = { ...defaultVmConfig(), shares: [{ path: dir, tag: 'src' }] };
  return { machine: VirtMachine.fromConfig(config, () => {}), config };
}

const access = (c: ReturnType<typeof ctx>) =>
  withControls([{ name: 'virtio-9p0' } as never], c)[0]!.controls!.find((x) => x.id === 'access')!;

describe('shared folder access control', () => {
  it('switches read-only and back, on the device and in the definition', async () => {
    const c = ctx();
    expect(access(c).value).toBe('rw');
    expect(access(c).note).toBeUndefined();
    expect(await applyControl('virtio-9p0', 'access', 'ro', c)).toMatch(/read-only/);
    expect(c.machine.shares[0]!.readOnly).toBe(true);
    expect(c.config.shares).toEqual([{ path: dir, tag: 'src', readOnly: true }]);
    expect(access(c).value).toBe('ro');
    await applyControl('virtio-9p0', 'access', 'rw', c);
    expect(c.machine.shares[0]!.readOnly).toBe(false);
    expect(c.config.shares).toEqual([{ path: dir, tag: 'src' }]);
  });

  it('refuses other values and devices without shares', async () => {
    const c = ctx();
    await expect(applyControl('virtio-9p0', 'access', 'yes', c)).rejects.toThrow(ControlError);
    await expect(applyControl('virtio-9p1', 'access', 'ro', c)).rejects.toThrow(/no control/);
    expect(c.machine.shares[0]!.readOnly).toBe(false);
  });
});
