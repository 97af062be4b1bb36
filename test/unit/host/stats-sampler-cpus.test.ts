/**
 * The live stats list each guest CPU for the monitor's `info cpus` and the UI: its pc in hex as
 * the guest sees it (an S-mode kernel address too, which Wasm hands over as a negative i64).
 */
import { describe, it, expect } from 'vitest';
import { StatsSampler } from '../../../main/worker/stats-sampler.js';
import type { MachineStats } from '../../../main/vm/machine.js';

const machine = (pcs: bigint[], retired: number[] = [], switches = 0): MachineStats => ({
  instret: 1000n,
  seconds: 0,
  mips: 0,
  exits: {},
  harts: {
    cpus: pcs.map((pc, id) => ({
      id,
      pc,
      priv: id === 0 ? 1 : 3,
      halted: id === 1,
      current: id === 0,
      retired: BigInt(retired[id] ?? 0),
    })),
    switches,
  },
  interrupts: {},
  traps: 0n,
  virtio: {},
});

describe('stats sampler: guest CPUs', () => {
  it('shows each hart pc unsigned, 16 hex digits, with its mode and state', () => {
    const sampler = new StatsSampler(
      64,
      () => 0,
      () => undefined,
    );
    // 0xffffffff8001e1f2 as Wasm's i64, and the boot ROM.
    const s = sampler.sample(machine([BigInt.asIntN(64, 0xffffffff8001e1f2n), 0x1000n]), 0);
    expect(s.cpus?.harts).toEqual([
      { id: 0, pc: '0xffffffff8001e1f2', mode: 'S', halted: false, current: true, mips: 0 },
      { id: 1, pc: '0x0000000000001000', mode: 'M', halted: true, current: false, mips: 0 },
    ]);
  });

  it("gives each hart's MIPS and the turns passed per second over the interval", () => {
    let now = 0;
    const sampler = new StatsSampler(
      64,
      () => now,
      () => undefined,
    );
    sampler.sample(machine([0x1000n, 0x1000n], [1_000_000, 0], 40), 0);
    now = 500;
    // Half a second: hart 0 retired 100 M more (200 MIPS), hart 1 25 M (50 MIPS).
    const s = sampler.sample(machine([0x1000n, 0x1000n], [101_000_000, 25_000_000], 540), 0);
    expect(s.cpus?.harts.map((h) => h.mips)).toEqual([200, 50]);
    expect(s.cpus?.switchesPerSec).toBe(1000);
  });
});
