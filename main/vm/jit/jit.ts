/**
 * The JIT's host side: after each slice the core has queued the blocks that became hot; this
 * translates them (translate.ts), builds one Wasm module per batch (instantiation costs tens of
 * microseconds whatever the size), puts its functions into the core's function table and marks
 * them in the core's block map, so the next execution calls them from inside the core.
 */
import { buildModule, I32, I64 } from './wasm-emitter.js';
import { BLOCK_LOCALS, decodeBlock, emitBlock, type CoreLayout } from './translate.js';

/** The core's exports the JIT uses (wasm-core/index.ts). */
export interface JitCoreExports {
  memory: WebAssembly.Memory;
  table: WebAssembly.Table;
  jitEnable(on: number, threshold: number, batch: number): void;
  jitLayout(what: number): number;
  jitQueued(): number;
  jitTakeQueue(): void;
  jitFlushes(): number;
  jitBlockCalls(): bigint;
  jitLoadSlow: (...args: never[]) => unknown;
  jitStoreSlow: (...args: never[]) => unknown;
}

export interface JitOptions {
  /** Executions of a block before it is translated (1: translate before its first run). */
  threshold?: number;
  /** Hot blocks the core collects before it stops to have them translated. */
  batch?: number;
}

const STATE_UNTRANSLATABLE = -2;
const STATE_QUEUED = -1;

export interface JitStats {
  blocks: number;
  modules: number;
  untranslatable: number;
  flushes: number;
  blockCalls: bigint;
  compileMs: number;
}

export class Jit {
  private readonly layout: CoreLayout;
  private readonly map: number;
  private readonly queue: number;
  /** First table slot the JIT owns; slots from here up to nextSlot hold translations. */
  private readonly firstSlot: number;
  private nextSlot: number;
  private seenFlushes: number;
  readonly stats: JitStats = { blocks: 0, modules: 0, untranslatable: 0, flushes: 0, blockCalls: 0n, compileMs: 0 };

  constructor(
    private readonly x: JitCoreExports,
    opts: JitOptions = {},
  ) {
    this.layout = {
      xregs: x.jitLayout(0),
      jitState: x.jitLayout(3),
      tlbLoad: x.jitLayout(4),
      tlbStore: x.jitLayout(5),
      expanded: x.jitLayout(6),
    };
    this.map = x.jitLayout(1);
    this.queue = x.jitLayout(2);
    this.firstSlot = x.table.length;
    this.nextSlot = this.firstSlot;
    x.jitEnable(1, opts.threshold ?? 16, opts.batch ?? 16);
    this.seenFlushes = x.jitFlushes();
  }

  /** Called by the core when its queue is full (env.jitDrain) and after every slice. */
  drain(): void {
    const flushes = this.x.jitFlushes();
    if (flushes !== this.seenFlushes) {
      // The map no longer points at any slot: reuse them all.
      this.stats.flushes += flushes - this.seenFlushes;
      this.seenFlushes = flushes;
      this.nextSlot = this.firstSlot;
    }
    const n = this.x.jitQueued();
    if (n === 0) return;
    const t0 = performance.now();
    const mem = new DataView(this.x.memory.buffer);
    const entries: { entry: number; code: ReturnType<typeof emitBlock> }[] = [];
    for (let i = 0; i < n; i++) {
      const q = this.queue + i * 16;
      const host = mem.getUint32(q, true);
      const entry = this.map + (((host >>> 1) & 0x3fff) << 4);
      if (mem.getUint32(entry, true) !== host || mem.getInt32(entry + 4, true) !== STATE_QUEUED) continue;
      const insns = decodeBlock(mem, host, this.layout);
      if (insns.length === 0) {
        mem.setInt32(entry + 4, STATE_UNTRANSLATABLE, true);
        this.stats.untranslatable++;
        continue;
      }
      entries.push({ entry, code: emitBlock(insns, this.layout) });
    }
    this.x.jitTakeQueue();
    if (entries.length > 0) this.install(mem, entries);
    this.stats.compileMs += performance.now() - t0;
  }

  private install(mem: DataView, entries: { entry: number; code: ReturnType<typeof emitBlock> }[]): void {
    const types = [
      { params: [I64, I64, I32], results: [I32] }, // a block
      { params: [I64, I32], results: [I64] }, // jitLoadSlow
      { params: [I64, I32, I64], results: [] }, // jitStoreSlow
    ];
    const bytes = buildModule(
      types,
      [
        { name: 'loadSlow', type: 1 },
        { name: 'storeSlow', type: 2 },
      ],
      entries.map((e, i) => ({ type: 0, locals: BLOCK_LOCALS, code: e.code, exportName: `b${i}` })),
    );
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
      env: { memory: this.x.memory, loadSlow: this.x.jitLoadSlow, storeSlow: this.x.jitStoreSlow },
    });
    const table = this.x.table;
    const need = this.nextSlot + entries.length - table.length;
    if (need > 0) table.grow(Math.max(need, 1024));
    entries.forEach((e, i) => {
      const slot = this.nextSlot++;
      table.set(slot, inst.exports[`b${i}`] as () => void);
      mem.setInt32(e.entry + 4, slot, true);
    });
    this.stats.blocks += entries.length;
    this.stats.modules++;
  }

  currentStats(): JitStats {
    return { ...this.stats, blockCalls: this.x.jitBlockCalls() };
  }
}
