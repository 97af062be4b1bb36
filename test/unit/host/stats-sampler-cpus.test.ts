/**
 * The live stats list each guest CPU for the monitor's `info cpus` and the UI: its pc in hex as
 * the guest sees it (an S-mode kernel address too, which Wasm hands over as a negative i64).
 */
import { describe, it, expect } from 'vitest';
import { StatsSampler } from '../../../main/worker/stats-sampler.js';
import type { MachineStats } from '../../../main/vm/machine.js';

const machine = (pcs: bigint[]): MachineStats => ({
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
    })),
    switches: 0,
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
      { id: 0, pc: '0xffffffff8001e1f2', mode: 'S', halted: false, current: true },
      { id: 1, pc: '0x0000000000001000', mode: 'M', halted: true, current: false },
    ]);
  });
});
