/**
 * The JIT's host side: after each slice the core has queued the blocks that became hot; this
 * translates them (translate.ts), builds one Wasm module per batch (instantiation costs tens of
 * microseconds whatever the size), puts its functions into the core's function table and marks
 * them in the core's block map, so the next execution calls them from inside the core. Once
 * translating pauses it rebuilds the small batch modules into fewer large ones (merge).
 */
import { buildModule, I32, I64 } from './wasm-emitter.js';
import type { Dispatcher } from './dispatcher.js';
import {
  BLOCK_LOCALS,
  CHAIN_HELPER_LOCALS,
  MAX_REGION_BLOCKS,
  TYPE_BLOCK,
  TYPE_GO,
  decodeRegion,
  emitRegion,
  emitChainHelper,
  emitGo,
  mapEntry,
  type CoreLayout,
} from './translate.js';

/** The core's exports the JIT uses (wasm-core/index.ts). */
export interface JitCoreExports {
  memory: WebAssembly.Memory;
  jitEnable(on: number, threshold: number, batch: number): void;
  jitSetDecay(every: bigint): void;
  jitLayout(what: number): number;
  jitQueued(): number;
  getInstret(): bigint;
  jitTakeQueue(): void;
  jitFlushes(): number;
  jitBlockCalls(): bigint;
  jitBlockInsns(): bigint;
  jitFlush(): void;
  jitEpoch(): number;
  jitCopies(): number;
  jitCopiesSize(): number;
  jitRevalidated(): number;
  jitStale(): number;
  jitChained(): bigint;
  jitTakeFreeSlot(): number;
  jitFreeSlots(): number;
  jitLoadSlow: (...args: never[]) => unknown;
  jitStoreSlow: (...args: never[]) => unknown;
  jitAtomicSlow: (...args: never[]) => unknown;
  jitPhysMinusHost(rom: number): bigint;
  jitFpCheck: (...args: never[]) => unknown;
  jitFpDirty: (...args: never[]) => unknown;
  jitFpOp: (...args: never[]) => unknown;
  jitCsr: (...args: never[]) => unknown;
}

export interface JitOptions {
  /** Executions of a block before it is translated (1: translate before its first run). */
  threshold?: number;
  /** Hot blocks the core collects before it stops to have them translated. */
  batch?: number;
  /** Table slots held before everything is dropped and translated afresh (tests lower it). */
  maxSlots?: number;
  /**
   * Guest blocks one translation may cover (translate.ts decodeRegion; default
   * MAX_REGION_BLOCKS, WASMVISOR_JIT_REGION_BLOCKS): 1 translates each block on its own.
   */
  regionBlocks?: number;
  /**
   * Instructions after which the counts of blocks not yet translated are halved (0: never;
   * default DEFAULT_DECAY, WASMVISOR_JIT_DECAY): the threshold then asks for a rate, not a total.
   */
  decay?: number;
  /** Merge translations into fewer, larger modules (Jit.merge; default on). */
  merge?: boolean;
  /** Batch modules merged at once (default MERGE_BATCHES), after this quiet (MERGE_QUIET_MS). */
  mergeBatches?: number;
  mergeQuietMs?: number;
}

/**
 * Table slots the JIT may hold before it starts over. Evicted and stale translations give
 * theirs back through the core's free list, so only the live ones count.
 */
const MAX_SLOTS = 1 << 16;

/**
 * Defaults, tunable with WASMVISOR_JIT_THRESHOLD / WASMVISOR_JIT_BATCH. Booting the bundled
 * guest translates 15600 blocks at 16/16 (0.95 s of compiling), 3500 at 256, 1240 at 1000 and
 * 180 at 10000: most boot code runs too few times to repay its translation (~130 µs a block)
 * and the cost of running it as a short block. With chained blocks, 10000 measured best for
 * the bundled boot (0.47 s of CPU against 0.72 s at 1000) and for Debian's stock kernel (7.0 s
 * against 8.4 s); 30000 was no better. With regions (translate.ts), a translation also covers
 * the colder blocks its hot entry reaches, and 30000 measured better than 10000 (alternately,
 * under load): the bundled boot 0.53 against 0.64 s of CPU, the stock kernel 6.6-7.0 against
 * 7.6 s, a virtio-net upload ~260 against ~190-200 MB per host CPU second; 100000 gave 0.49 s
 * and 7.0 s but runs less of longer workloads translated. Since counts decay (DEFAULT_DECAY),
 * the threshold is a rate, and 10000 halved every 3 * 2^24 instructions (a block must run about
 * once per 10,000 instructions) measured best: 4 KiB random reads stay interpreted (their path's
 * blocks run once per ~19,000 instructions), a buffered read's per-page kernel code (once per
 * ~5,500) is translated, Debian's boot to root's shell 45.1-45.6 s against 48.0 s at 30000 /
 * 2^26 and 70.8-75.7 s without decay (ARCHITECTURE.md "Counts decay").
 */
const DEFAULT_THRESHOLD = 10000;
/**
 * Instructions between two halvings of the counts of blocks not yet translated (wasm-core/jit
 * jitDecayTick): a block must run ~threshold / 2 times in this many instructions.
 */
const DEFAULT_DECAY = 3 * (1 << 24);
const DEFAULT_BATCH = 64;
/**
 * Merging (Jit.merge): MERGE_BATCHES batch modules are rebuilt into one once no module was made
 * for MERGE_QUIET_MS, and MERGE_MODULES merged modules of one generation into one of the next.
 * With merges after 100 ms of quiet, Debian's stock kernel booted in 4.6 s instead of 4.1 (6.6
 * s of CPU instead of 5.3: 6 merges rebuilt 774 translations, which V8 compiles afresh); after
 * 1 s it boots as without merging, and 4 KiB random reads in the bundled guest cost 137-145 µs
 * of host CPU each instead of 161-170 (session 19, alternate runs).
 */
const MERGE_BATCHES = 8;
const MERGE_MODULES = 4;
const MERGE_QUIET_MS = 1000;

/** How long after the last translation a short queue waits at most before it is translated. */
const MAX_WAIT_MS = 5;
/**
 * The same wait under deterministic time (`--icount`), in guest instructions (a few ms' worth):
 * which blocks run translated decides where a block's end falls (a hart's turn, a slice, an
 * interrupt), so it must not depend on how fast the host is.
 */
const MAX_WAIT_INSNS = 1n << 20n;

const STATE_UNTRANSLATABLE = -2;
const STATE_QUEUED = -1;

export interface JitStats {
  blocks: number;
  modules: number;
  untranslatable: number;
  /** Times everything was dropped because the table or the copy area was full. */
  flushes: number;
  /** FENCE.I epochs, and translations found unchanged / changed after one. */
  epochs: number;
  revalidated: number;
  stale: number;
  /** Blocks called by the core; blocks entered from another block (chaining). */
  blockCalls: bigint;
  chained: bigint;
  /** Instructions retired by translated code (÷ blockCalls: the mean run per call). */
  blockInsns: bigint;
  /** Instructions in the translations (÷ blocks: the mean region length). */
  insns: number;
  /** Guest blocks in the translations (÷ blocks: the mean blocks a region). */
  regionBlocks?: number;
  compileMs: number;
  /** Table slots taken since the last flush, and translations placed in a freed one. */
  slots: number;
  slotsReused: number;
  /** Merges (Jit.merge), and the translations they rebuilt. */
  merges?: number;
  merged?: number;
}

/** An environment variable's number, where 0 is a value (unset or not a number: undefined). */
function envOrZero(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v.trim() === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

export class Jit {
  private readonly layout: CoreLayout;
  private readonly map: number;
  private readonly queue: number;
  /** First table slot the JIT owns; slots from here up to nextSlot hold translations. */
  private readonly firstSlot: number;
  private nextSlot: number;
  private seenFlushes: number;
  private copyNext = 0;
  /** A translation found no room in the copy area: the next drain starts over. */
  private copiesFull = false;
  readonly stats: JitStats = {
    blocks: 0,
    modules: 0,
    untranslatable: 0,
    flushes: 0,
    epochs: 0,
    revalidated: 0,
    stale: 0,
    blockCalls: 0n,
    chained: 0n,
    blockInsns: 0n,
    insns: 0,
    regionBlocks: 0,
    compileMs: 0,
    slots: 0,
    slotsReused: 0,
  };

  private readonly table: WebAssembly.Table;
  private readonly batch: number;
  private readonly maxSlots: number;
  private readonly regionBlocks: number;
  /** Whether translations are merged into fewer modules (merge; WASMVISOR_JIT_MERGE=0: not). */
  private readonly mergeOn: boolean;
  private readonly mergeBatches: number;
  private readonly mergeQuietMs: number;
  /** The chain helper's body: the same in every batch module. */
  private readonly chainHelper: ReturnType<typeof emitChainHelper>;
  /** When the queue was last translated (a short queue waits until MAX_WAIT_MS after it). */
  private lastDrain = performance.now();
  /** Deterministic time: waits count guest instructions (MAX_WAIT_INSNS), not milliseconds. */
  private deterministic = false;
  /** instret at the last translation (deterministic time's clock for the wait). */
  private lastDrainInsns = 0n;

  constructor(
    private readonly x: JitCoreExports,
    dispatcher: Dispatcher,
    opts: JitOptions = {},
  ) {
    this.table = dispatcher.table;
    this.layout = {
      xregs: x.jitLayout(0),
      jitState: x.jitLayout(3),
      tlbLoad: x.jitLayout(4),
      tlbStore: x.jitLayout(5),
      expanded: x.jitLayout(6),
      reservation: x.jitLayout(7),
      ramHost: x.jitLayout(8),
      ramPa: x.jitPhysMinusHost(0),
      romPa: x.jitPhysMinusHost(1),
      fregs: x.jitLayout(9),
      leave: x.jitLayout(10),
      tlbFetch: x.jitLayout(11),
      map: x.jitLayout(1),
    };
    this.chainHelper = emitChainHelper(this.layout);
    this.map = x.jitLayout(1);
    this.queue = x.jitLayout(2);
    this.firstSlot = 1; // slot 0 is the dispatcher's empty entry (state 0 means untranslated)
    this.nextSlot = this.firstSlot;
    const env = (name: string) => Number(process.env[name]) || undefined;
    this.batch = opts.batch ?? env('WASMVISOR_JIT_BATCH') ?? DEFAULT_BATCH;
    this.maxSlots = opts.maxSlots ?? MAX_SLOTS;
    this.regionBlocks =
      opts.regionBlocks ?? env('WASMVISOR_JIT_REGION_BLOCKS') ?? MAX_REGION_BLOCKS;
    this.mergeOn = opts.merge ?? process.env.WASMVISOR_JIT_MERGE !== '0';
    this.mergeBatches = opts.mergeBatches ?? MERGE_BATCHES;
    this.mergeQuietMs = opts.mergeQuietMs ?? MERGE_QUIET_MS;
    x.jitEnable(
      1,
      opts.threshold ?? env('WASMVISOR_JIT_THRESHOLD') ?? DEFAULT_THRESHOLD,
      this.batch,
    );
    const decay = opts.decay ?? envOrZero('WASMVISOR_JIT_DECAY') ?? DEFAULT_DECAY;
    x.jitSetDecay(BigInt(Math.max(0, Math.floor(decay))));
    this.seenFlushes = x.jitFlushes();
  }

  /**
   * Deterministic time (`--icount`): a short queue then waits for guest instructions rather
   * than host milliseconds, so two runs translate the same blocks at the same instructions.
   */
  setDeterministic(on: boolean): void {
    this.deterministic = on;
    this.lastDrainInsns = this.x.getInstret();
  }

  /**
   * Called by the core when its queue is full (env.jitDrain), and after every slice with
   * `atLeast`: a module costs ~0.3 ms to instantiate whatever its size, so a slice's end waits
   * for a few blocks (the stock kernel's boot made 3700 modules of 3 blocks without this), or
   * for a few milliseconds (a program with only a few hot blocks must still get them).
   */
  drain(atLeast = 1): void {
    this.noteFlushes();
    const n = this.x.jitQueued();
    if (n === 0) {
      this.maybeMerge();
      return;
    }
    const now = performance.now();
    const insns = this.deterministic ? this.x.getInstret() : 0n;
    const waited = this.deterministic
      ? insns - this.lastDrainInsns >= MAX_WAIT_INSNS
      : now - this.lastDrain >= MAX_WAIT_MS;
    if (n < Math.min(atLeast, this.batch) && !waited) return;
    this.lastDrain = now;
    this.lastDrainInsns = insns;
    if (
      this.nextSlot + Math.max(0, n - this.x.jitFreeSlots()) - this.firstSlot > this.maxSlots ||
      this.copiesFull ||
      this.copyNext + n * 512 > this.x.jitCopiesSize()
    ) {
      this.copiesFull = false;
      this.x.jitFlush(); // empties the queue too
      this.noteFlushes();
      return;
    }
    const t0 = performance.now();
    const mem = new DataView(this.x.memory.buffer);
    const entries: { entry: number; code: ReturnType<typeof emitRegion> }[] = [];
    for (let i = 0; i < n; i++) {
      const q = this.queue + i * 16;
      const host = mem.getUint32(q, true);
      const entry = mapEntry(this.map, host);
      if (mem.getUint32(entry, true) !== host || mem.getInt32(entry + 4, true) !== STATE_QUEUED)
        continue;
      const region = decodeRegion(mem, host, this.layout, this.regionBlocks);
      if (region === null) {
        mem.setInt32(entry + 4, STATE_UNTRANSLATABLE, true);
        this.stats.untranslatable++;
        continue;
      }
      const len = region.span;
      if (this.copyNext + len > this.x.jitCopiesSize()) {
        // No room for its bytes: it counts afresh, and the next drain starts over.
        mem.setInt32(entry + 4, 0, true);
        mem.setUint32(entry + 8, 0, true);
        this.copiesFull = true;
        continue;
      }
      // The guest bytes this translation stands for, to check it against after a FENCE.I.
      const copies = this.x.jitCopies();
      new Uint8Array(this.x.memory.buffer).copyWithin(copies + this.copyNext, host, host + len);
      mem.setUint32(entry + 12, this.x.jitEpoch(), true);
      mem.setUint32(entry + 16, this.copyNext, true);
      mem.setUint32(entry + 20, len, true);
      this.copyNext += (len + 7) & ~7;
      this.stats.insns += region.insns;
      this.stats.regionBlocks = (this.stats.regionBlocks ?? 0) + region.blocks.length;
      entries.push({ entry, code: emitRegion(region, this.layout, host) });
    }
    this.x.jitTakeQueue();
    if (entries.length > 0) this.install(mem, entries);
    this.stats.compileMs += performance.now() - t0;
  }

  /**
   * Live translations by table slot: their map entry, host address, body and generation (0: in
   * a batch module; g + 1: merged from generation g), for merging.
   */
  private readonly live = new Map<
    number,
    { entry: number; host: number; code: Uint8Array; gen: number }
  >();
  /** Modules of each generation made since that generation was last merged. */
  private readonly modulesOfGen: number[] = [];
  /** When the last batch module was made (merging waits for a quiet spell). */
  private lastModuleAt = 0;

  /**
   * Rebuilds the live translations of generation `gen` into one module of the next. A chain
   * through translations spread over many small modules enters each in code pages and a jump
   * table of its own, which cost the host more than interpreting code run once per disk request
   * (its many entries miss the host's instruction caches and TLB). Generation 0 is merged every
   * MERGE_BATCHES modules and each later one every MERGE_MODULES, so a translation is rebuilt
   * O(log n) times and a long-running VM keeps few, large modules.
   */
  private merge(mem: DataView, gen: number): void {
    const t0 = performance.now();
    const keep: { slot: number; code: Uint8Array }[] = [];
    for (const [slot, t] of this.live) {
      if (mem.getUint32(t.entry, true) !== t.host || mem.getInt32(t.entry + 4, true) !== slot) {
        this.live.delete(slot); // evicted, stale or flushed: the slot is someone else's now
      } else if (t.gen === gen) {
        keep.push({ slot, code: t.code });
        t.gen = gen + 1;
      }
    }
    this.modulesOfGen[gen] = 0;
    if (keep.length === 0) return;
    const inst = this.instantiate(
      keep.map((k) => k.code),
      true,
    );
    keep.forEach((k, i) => this.table.set(k.slot, inst.exports[`b${i}`] as () => void));
    this.stats.compileMs += performance.now() - t0;
    this.stats.merges = (this.stats.merges ?? 0) + 1;
    this.stats.merged = (this.stats.merged ?? 0) + keep.length;
    this.countModule(mem, gen + 1);
  }

  private countModule(mem: DataView, gen: number): void {
    const n = (this.modulesOfGen[gen] ?? 0) + 1;
    this.modulesOfGen[gen] = n;
    if (n >= MERGE_MODULES) this.merge(mem, gen);
  }

  /**
   * Merges the batch modules once there are MERGE_BATCHES of them and none was made for
   * MERGE_QUIET_MS: while code keeps getting hot (a boot) every merge would soon be followed by
   * more, and rebuilding costs V8 compiling the translations afresh.
   */
  private maybeMerge(): void {
    if (!this.mergeOn || (this.modulesOfGen[0] ?? 0) < this.mergeBatches) return;
    if (performance.now() - this.lastModuleAt < this.mergeQuietMs) return;
    this.merge(new DataView(this.x.memory.buffer), 0);
  }

  private install(
    mem: DataView,
    entries: { entry: number; code: ReturnType<typeof emitRegion> }[],
  ): void {
    const inst = this.instantiate(entries.map((e) => e.code));
    const table = this.table;
    const need = this.nextSlot + entries.length - table.length;
    if (need > 0) table.grow(Math.max(need, 1024));
    entries.forEach((e, i) => {
      let slot = this.x.jitTakeFreeSlot();
      if (slot !== 0) this.stats.slotsReused++;
      else slot = this.nextSlot++;
      table.set(slot, inst.exports[`b${i}`] as () => void);
      mem.setInt32(e.entry + 4, slot, true);
      const host = mem.getUint32(e.entry, true);
      this.live.set(slot, { entry: e.entry, host, code: e.code.view().slice(), gen: 0 });
    });
    this.stats.blocks += entries.length;
    this.stats.modules++;
    this.modulesOfGen[0] = (this.modulesOfGen[0] ?? 0) + 1;
    this.lastModuleAt = performance.now();
  }

  private instantiate(
    codes: (ReturnType<typeof emitRegion> | Uint8Array)[],
    merged = false,
  ): WebAssembly.Instance {
    const types = [
      { params: [I64, I64, I32], results: [I64, I32, I32] }, // a block (translate.ts)
      { params: [I64, I32], results: [I64] }, // jitLoadSlow
      { params: [I64, I32, I64], results: [] }, // jitStoreSlow
      { params: [I32, I64, I64], results: [I64] }, // jitAtomicSlow
      { params: [I32], results: [I32] }, // jitFpCheck
      { params: [], results: [] }, // jitFpDirty
      { params: [I32, I32], results: [I32] }, // jitFpOp
      { params: [I32, I64, I32, I32], results: [I64] }, // jitCsr
      { params: [I64, I64, I32, I32], results: [I64, I32, I32] }, // go (translate.ts TYPE_GO)
    ];
    // The chain helper (translate.ts FUNC_CHAIN) comes first, then the go function (FUNC_GO:
    // a merged module imports the dispatcher's table and tail-calls successors through it);
    // the blocks follow, exported.
    const bytes = buildModule(
      types,
      [
        { name: 'loadSlow', type: 1 },
        { name: 'storeSlow', type: 2 },
        { name: 'atomicSlow', type: 3 },
        { name: 'fpCheck', type: 4 },
        { name: 'fpDirty', type: 5 },
        { name: 'fpOp', type: 6 },
        { name: 'csr', type: 7 },
      ],
      [
        { type: TYPE_BLOCK, locals: CHAIN_HELPER_LOCALS, code: this.chainHelper },
        { type: TYPE_GO, locals: [], code: emitGo(merged) },
        ...codes.map((code, i) => ({
          type: TYPE_BLOCK,
          locals: BLOCK_LOCALS,
          code,
          exportName: `b${i}`,
        })),
      ],
      { table: merged },
    );
    return new WebAssembly.Instance(new WebAssembly.Module(bytes), {
      env: {
        memory: this.x.memory,
        loadSlow: this.x.jitLoadSlow,
        storeSlow: this.x.jitStoreSlow,
        atomicSlow: this.x.jitAtomicSlow,
        fpCheck: this.x.jitFpCheck,
        fpDirty: this.x.jitFpDirty,
        fpOp: this.x.jitFpOp,
        csr: this.x.jitCsr,
        ...(merged ? { table: this.table } : {}),
      },
    });
  }

  /** After a full flush (reset, or ours) the map points at no slot or copy: reuse them all. */
  private noteFlushes(): void {
    const flushes = this.x.jitFlushes();
    if (flushes === this.seenFlushes) return;
    this.stats.flushes += flushes - this.seenFlushes;
    this.seenFlushes = flushes;
    this.nextSlot = this.firstSlot;
    this.copyNext = 0;
    this.live.clear();
    this.modulesOfGen.length = 0;
  }

  currentStats(): JitStats {
    return {
      ...this.stats,
      slots: this.nextSlot - this.firstSlot,
      epochs: this.x.jitEpoch() - 1,
      revalidated: this.x.jitRevalidated(),
      stale: this.x.jitStale(),
      blockCalls: this.x.jitBlockCalls(),
      chained: this.x.jitChained(),
      blockInsns: this.x.jitBlockInsns(),
    };
  }
}
