/** Turns the machine's cumulative counters into per-second rates between two samples. */
import type { MachineStats } from '../vm/machine.js';
import type { VmStats } from '../host/api-types.js';

export class StatsSampler {
  private prev:
    | { at: number; instret: number; exits: Map<string, number>; irqs: Map<string, number> }
    | undefined;

  constructor(
    private readonly guestMemMiB: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  sample(s: MachineStats, wasmMemBytes: number): VmStats {
    const at = this.now();
    const instret = Number(s.instret);
    const exits = new Map(Object.entries(s.exits).map(([d, e]) => [d, e.reads + e.writes]));
    const irqs = new Map(Object.entries(s.interrupts));
    const p = this.prev;
    const dt = p ? (at - p.at) / 1000 : 0;
    const rate = (cur: Map<string, number>, old: Map<string, number> | undefined) => {
      const out: Record<string, number> = {};
      for (const [k, v] of cur) out[k] = dt > 0 ? Math.max(0, v - (old?.get(k) ?? 0)) / dt : 0;
      return out;
    };
    const snapshot: VmStats = {
      t: Date.now(),
      uptimeSec: s.seconds,
      instret,
      mips: p && dt > 0 ? (instret - p.instret) / dt / 1e6 : 0,
      traps: Number(s.traps),
      exitsPerSec: rate(exits, p?.exits),
      interruptsPerSec: rate(irqs, p?.irqs),
      guestMemMiB: this.guestMemMiB,
      wasmMemMiB: wasmMemBytes / (1024 * 1024),
    };
    this.prev = { at, instret, exits, irqs };
    return snapshot;
  }
}
