/**
 * SiFive PLIC as configured on QEMU's virt board: sources 1..95 (0 means "none"), 3 priority
 * bits, and a context pair per hart (QEMU's hart config "MS" for each hart): context 2h is hart
 * h's M-mode external interrupt, context 2h+1 its S-mode one. Each context's output drives only
 * its own hart's line; the registers of contexts beyond the last hart behave as unmapped space.
 *
 *   0x000000 + 4*src         priority
 *   0x001000 + 4*word        pending bits (read-only)
 *   0x002000 + 0x80*ctx      enable bits, 3 words
 *   0x200000 + 0x1000*ctx    +0 threshold, +4 claim (read) / complete (write)
 *
 * Sources are level-triggered, as QEMU models them: a source is pending while its line is high
 * and it is not being serviced; a claim takes it out of pending until the matching complete, and
 * if the line is still high at complete it becomes pending again. A line that drops before the
 * claim withdraws the request (QEMU behaviour), so drivers see fewer spurious claims.
 *
 * Registers are 32-bit: other sizes and unaligned offsets are logged and ignored.
 */
import { GuestErrorLog, hex, type LogSink } from './guest-log.js';
import type { HartIrqLines, IrqLine, MmioDevice } from './mmio.js';

export const PLIC_SOURCES = 96;
/** Contexts per hart: M-mode, then S-mode. */
export const PLIC_CONTEXTS_PER_HART = 2;
/** Harts whose context registers fit in the virt board's 6 MiB PLIC window (QEMU's limit too). */
export const PLIC_MAX_HARTS = 512;
const WORDS = PLIC_SOURCES / 32;
const PRIORITY_MASK = 7;

const PENDING_BASE = 0x1000;
const ENABLE_BASE = 0x2000;
const ENABLE_STRIDE = 0x80;
const CONTEXT_BASE = 0x20_0000;
const CONTEXT_STRIDE = 0x1000;

export interface PlicState {
  version: 1;
  /** Priority of each source 0..95 (source 0 is always 0). */
  priority: number[];
  /** Bit sets of 3 words each (sources 0..95). */
  pending: number[];
  /** Claimed and not yet completed. */
  inService: number[];
  /** Line levels as the devices last drove them. */
  levels: number[];
  /**
   * Per context (2 per hart: M, S): 3 words of enable bits. Its length is the machine's context
   * count, which a restore checks (a 1-hart machine's files have 2).
   */
  enable: number[][];
  /** Per context, same length as `enable`. */
  threshold: number[];
}

export interface PlicStats {
  /** Interrupt requests accepted (pending 0 -> 1) per source number; sources never seen omitted. */
  injected: Record<number, number>;
  claims: number;
  /** Claims that found nothing to return (0). */
  emptyClaims: number;
  completes: number;
  guestErrors: number;
}

export class Plic implements MmioDevice {
  readonly name = 'plic';

  private readonly priority = new Uint32Array(PLIC_SOURCES);
  private readonly pending = new Uint32Array(WORDS);
  private readonly inService = new Uint32Array(WORDS);
  private readonly levels = new Uint32Array(WORDS);
  /** Number of contexts: 2 per hart. */
  readonly contexts: number;
  private readonly enable: Uint32Array;
  private readonly threshold: Uint32Array;
  /** What each context's output was last driven to; null forces the next update to drive. */
  private readonly outputs: (boolean | null)[];
  private readonly lines = new Map<number, IrqLine>();
  private readonly injected = new Uint32Array(PLIC_SOURCES);
  private readonly counters = { claims: 0, emptyClaims: 0, completes: 0 };
  private readonly log: GuestErrorLog;

  /** `harts[h]` receives contexts 2h (M) and 2h+1 (S). */
  constructor(
    private readonly harts: readonly HartIrqLines[],
    log?: LogSink,
  ) {
    if (harts.length < 1 || harts.length > PLIC_MAX_HARTS) {
      throw new RangeError(`plic: ${harts.length} harts (1..${PLIC_MAX_HARTS})`);
    }
    this.contexts = harts.length * PLIC_CONTEXTS_PER_HART;
    this.enable = new Uint32Array(WORDS * this.contexts);
    this.threshold = new Uint32Array(this.contexts);
    this.outputs = new Array<boolean | null>(this.contexts).fill(null);
    this.log = new GuestErrorLog(this.name, log);
    this.reset();
  }

  /** The input line of source `n` (1..95), for a device to drive. */
  line(n: number): IrqLine {
    if (!Number.isInteger(n) || n < 1 || n >= PLIC_SOURCES) {
      throw new RangeError(`plic: no source ${n}`);
    }
    let l = this.lines.get(n);
    if (!l) {
      l = { set: (level: boolean) => this.setLevel(n, level) };
      this.lines.set(n, l);
    }
    return l;
  }

  get stats(): PlicStats {
    const injected: Record<number, number> = {};
    this.injected.forEach((count, src) => {
      if (count) injected[src] = count;
    });
    return { injected, ...this.counters, guestErrors: this.log.count };
  }

  /** Guest-visible registers to power-on values; line levels are the devices' and stay. */
  reset(): void {
    this.priority.fill(0);
    this.enable.fill(0);
    this.threshold.fill(0);
    this.inService.fill(0);
    this.pending.set(this.levels);
    this.pending[0] &= ~1;
    this.outputs.fill(null);
    this.update();
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (size !== 4 || offset & 3) {
      this.log.report(`${size}-byte read at ${hex(offset)} (registers are 32-bit)`);
      return 0;
    }
    if (offset < PENDING_BASE) {
      const src = offset >> 2;
      return src < PLIC_SOURCES ? this.priority[src] : this.unknown('read', offset);
    }
    if (offset < ENABLE_BASE) {
      const word = (offset - PENDING_BASE) >> 2;
      return word < WORDS ? this.pending[word] : this.unknown('read', offset);
    }
    if (offset < CONTEXT_BASE) {
      const ctx = Math.floor((offset - ENABLE_BASE) / ENABLE_STRIDE);
      const word = ((offset - ENABLE_BASE) % ENABLE_STRIDE) >> 2;
      if (ctx < this.contexts && word < WORDS) return this.enable[ctx * WORDS + word];
      return this.unknown('read', offset);
    }
    const ctx = Math.floor((offset - CONTEXT_BASE) / CONTEXT_STRIDE);
    const reg = (offset - CONTEXT_BASE) % CONTEXT_STRIDE;
    if (ctx < this.contexts) {
      if (reg === 0) return this.threshold[ctx];
      if (reg === 4) return this.claim(ctx);
    }
    return this.unknown('read', offset);
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 4 || offset & 3) {
      this.log.report(`${size}-byte write at ${hex(offset)} (registers are 32-bit)`);
      return;
    }
    const v = value >>> 0;
    if (offset < PENDING_BASE) {
      const src = offset >> 2;
      if (src === 0 || src >= PLIC_SOURCES) return void this.unknown('write', offset);
      this.priority[src] = v & PRIORITY_MASK;
    } else if (offset < ENABLE_BASE) {
      // Pending bits are read-only.
      return void this.unknown('write', offset);
    } else if (offset < CONTEXT_BASE) {
      const ctx = Math.floor((offset - ENABLE_BASE) / ENABLE_STRIDE);
      const word = ((offset - ENABLE_BASE) % ENABLE_STRIDE) >> 2;
      if (ctx >= this.contexts || word >= WORDS) return void this.unknown('write', offset);
      // Source 0 does not exist.
      this.enable[ctx * WORDS + word] = word === 0 ? v & ~1 : v;
    } else {
      const ctx = Math.floor((offset - CONTEXT_BASE) / CONTEXT_STRIDE);
      const reg = (offset - CONTEXT_BASE) % CONTEXT_STRIDE;
      if (ctx >= this.contexts || (reg !== 0 && reg !== 4)) {
        return void this.unknown('write', offset);
      }
      if (reg === 0) this.threshold[ctx] = v & PRIORITY_MASK;
      else this.complete(ctx, v);
    }
    this.update();
  }

  saveState(): PlicState {
    return {
      version: 1,
      priority: Array.from(this.priority),
      pending: Array.from(this.pending),
      inService: Array.from(this.inService),
      levels: Array.from(this.levels),
      enable: Array.from({ length: this.contexts }, (_, c) =>
        Array.from(this.enable.subarray(c * WORDS, (c + 1) * WORDS)),
      ),
      threshold: Array.from(this.threshold),
    };
  }

  restoreState(s: PlicState): void {
    if (s.version !== 1) throw new Error(`plic: unsupported state version ${s.version}`);
    if (!Array.isArray(s.enable)) throw new Error('plic: the saved state has no enable registers');
    const saved = s.enable.length;
    if (saved !== this.contexts || !Array.isArray(s.threshold) || s.threshold.length !== saved) {
      // Contexts are per hart: a state from a machine with another CPU count cannot fit.
      throw new Error(
        `plic: the saved state is for ${describeHarts(saved)}, this machine has ` +
          `${describeHarts(this.contexts)}`,
      );
    }
    for (let i = 0; i < PLIC_SOURCES; i++) this.priority[i] = (s.priority[i] ?? 0) & PRIORITY_MASK;
    this.priority[0] = 0;
    for (let w = 0; w < WORDS; w++) {
      this.pending[w] = s.pending[w] ?? 0;
      this.inService[w] = s.inService[w] ?? 0;
      this.levels[w] = s.levels[w] ?? 0;
      for (let c = 0; c < this.contexts; c++) this.enable[c * WORDS + w] = s.enable[c]?.[w] ?? 0;
    }
    for (let c = 0; c < this.contexts; c++) {
      this.threshold[c] = (s.threshold[c] ?? 0) & PRIORITY_MASK;
    }
    this.pending[0] &= ~1;
    this.outputs.fill(null);
    this.update();
  }

  private unknown(kind: 'read' | 'write', offset: number): number {
    this.log.report(`${kind} of unknown register ${hex(offset)}`);
    return 0;
  }

  private setLevel(src: number, level: boolean): void {
    const w = src >> 5;
    const bit = 1 << (src & 31);
    if (level) {
      this.levels[w] |= bit;
      if (!(this.pending[w] & bit) && !(this.inService[w] & bit)) {
        this.pending[w] |= bit;
        this.injected[src]++;
      }
    } else {
      this.levels[w] &= ~bit;
      this.pending[w] &= ~bit;
    }
    this.update();
  }

  /** Highest-priority claimable source above the threshold (lowest number wins ties), or 0. */
  private best(ctx: number): number {
    let best = 0;
    let bestPrio = this.threshold[ctx];
    for (let w = 0; w < WORDS; w++) {
      let bits = this.pending[w] & ~this.inService[w] & this.enable[ctx * WORDS + w];
      while (bits) {
        const b = 31 - Math.clz32(bits & -bits);
        bits &= bits - 1;
        const src = (w << 5) | b;
        if (this.priority[src] > bestPrio) {
          best = src;
          bestPrio = this.priority[src];
        }
      }
    }
    return best;
  }

  private claim(ctx: number): number {
    this.counters.claims++;
    const src = this.best(ctx);
    if (src === 0) {
      this.counters.emptyClaims++;
      return 0;
    }
    const w = src >> 5;
    const bit = 1 << (src & 31);
    this.pending[w] &= ~bit;
    this.inService[w] |= bit;
    this.update();
    return src;
  }

  private complete(ctx: number, src: number): void {
    if (src === 0 || src >= PLIC_SOURCES) {
      this.log.report(`complete of invalid source ${src}`);
      return;
    }
    const w = src >> 5;
    const bit = 1 << (src & 31);
    // The spec ignores completes for sources not enabled on this context (Linux re-enables a
    // masked source around its complete for exactly this reason).
    if (!(this.enable[ctx * WORDS + w] & bit) || !(this.inService[w] & bit)) return;
    this.counters.completes++;
    this.inService[w] &= ~bit;
    if (this.levels[w] & bit) {
      this.pending[w] |= bit;
      this.injected[src]++;
    }
  }

  private update(): void {
    for (let ctx = 0; ctx < this.contexts; ctx++) {
      const level = this.best(ctx) !== 0;
      if (level === this.outputs[ctx]) continue;
      this.outputs[ctx] = level;
      const hart = this.harts[(ctx / PLIC_CONTEXTS_PER_HART) | 0];
      if (ctx % PLIC_CONTEXTS_PER_HART === 0) hart.setMachineExternal(level);
      else hart.setSupervisorExternal(level);
    }
  }
}

/** "2 harts (4 PLIC contexts)", for state mismatch messages. */
function describeHarts(contexts: number): string {
  if (contexts % PLIC_CONTEXTS_PER_HART !== 0) return `${contexts} PLIC contexts`;
  const harts = contexts / PLIC_CONTEXTS_PER_HART;
  return `${harts} hart${harts === 1 ? '' : 's'} (${contexts} PLIC contexts)`;
}
