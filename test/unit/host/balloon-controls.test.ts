/**
 * The balloon's target control on a real machine (no guest running): the UI's select keeps its
 * short list of steps, and the control's range takes any whole MiB from 1 to RAM — so the
 * monitor's `balloon 300` reaches VirtMachine.setBalloonTarget on a 512 MiB guest — while
 * values outside it, fractions and junk are refused before they reach the device.
 */
import { describe, it, expect } from 'vitest';
import { VirtMachine } from '../../../main/vm/machine.js';
import { defaultBalloonConfig, defaultVmConfig } from '../../../main/vm/config.js';
import { loadBootImages } from '../../../main/vm/images.js';
import { applyControl, withControls, ControlError } from '../../../main/worker/device-controls.js';
import { balloonSteps } from '../../../main/worker/controls/balloon-controls.js';
import { controlAccepts, type DeviceControl } from '../../../main/host/api-types.js';

function ctx(memMiB: number) {
  const config = { ...defaultVmConfig(), memMiB, balloon: defaultBalloonConfig() };
  const machine = new VirtMachine({
    memMiB,
    ...loadBootImages(config),
    bootargs: 'console=ttyS0',
    balloon: config.balloon,
    log: () => {},
  });
  return { machine, config };
}

const target = (c: ReturnType<typeof ctx>): DeviceControl =>
  withControls([{ name: 'virtio-balloon0' } as never], c)[0].controls!.find(
    (x) => x.id === 'target',
  )!;

describe('balloon target control', () => {
  it('offers steps for the select and a 1..RAM range for anything else', () => {
    const c = ctx(512);
    const t = target(c);
    expect(t.options.map((o) => o.value)).toEqual(balloonSteps(512).reverse().map(String));
    expect(t.options.some((o) => o.value === '300')).toBe(false);
    expect(t.range).toEqual({ min: 1, max: 512, unit: 'MiB' });
    expect(t.value).toBe('512');
  });

  it('applies any whole MiB in range, refuses the rest', async () => {
    const c = ctx(512);
    await expect(applyControl('virtio-balloon0', 'target', '300', c)).resolves.toBe(
      'virtio-balloon0: guest memory target 300 MiB',
    );
    expect(c.machine.balloon!.targetPages).toBe((212 * 1024 * 1024) / 4096);
    // The current target joins the select's options, so the UI shows it.
    expect(target(c).value).toBe('300');
    expect(target(c).options.some((o) => o.value === '300')).toBe(true);
    await applyControl('virtio-balloon0', 'target', '1', c);
    expect(c.machine.balloon!.targetPages).toBe((511 * 1024 * 1024) / 4096);
    for (const bad of ['0', '513', '300.5', '-1', '1e2', ' 300', 'x', '']) {
      await expect(applyControl('virtio-balloon0', 'target', bad, c)).rejects.toThrow(ControlError);
    }
    await expect(applyControl('virtio-balloon0', 'target', '513', c)).rejects.toThrow(
      /whole number 1\.\.512 MiB/,
    );
    expect(c.machine.balloon!.targetPages).toBe((511 * 1024 * 1024) / 4096);
  });

  it('controlAccepts: options always, whole numbers only with a range', () => {
    const choice: DeviceControl = {
      id: 'c',
      label: 'C',
      options: [{ value: 'on', label: 'on' }],
      value: 'on',
    };
    expect(controlAccepts(choice, 'on')).toBe(true);
    expect(controlAccepts(choice, '5')).toBe(false);
    const ranged = { ...choice, range: { min: 1, max: 10 } };
    expect(['on', '1', '10'].map((v) => controlAccepts(ranged, v))).toEqual([true, true, true]);
    expect(['0', '11', '2.5', '0x5', 'off'].some((v) => controlAccepts(ranged, v))).toBe(false);
  });
});
