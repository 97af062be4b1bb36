/**
 * Cluster reference counts: the refcount table (kept whole in memory) and its refcount blocks
 * (loaded on first use, kept), with entries of any width from 1 to 64 bits, and the cluster
 * allocator on top of them.
 *
 * Crash safety lives in the order of writes, which this class and the image keep together:
 * - an increment reaches the disk (and a sync) before any table that points at the cluster;
 *   the image calls writeDirty() + sync before writing L2/L1 entries;
 * - a new refcount block is written and synced before the table entry that points at it, and a
 *   grown table before the header field that points at it: at every instant the on-disk image
 *   describes itself, at worst with leaked clusters (refcount too high), never with a cluster in
 *   use whose refcount is too low;
 * - decrements are applied only by the image, after the references are gone on disk.
 */
import type { HostFile } from './host-file.js';
import { MAX_REFTABLE_BYTES } from './qcow2-header.js';

export class Qcow2CorruptError extends Error {}

/** What Refcounts needs of the overlap guard (overlap.ts). */
interface MetadataGuard {
  overlap(host: number, length: number): number;
  release(cluster: number): void;
}

export class Refcounts {
  readonly clusterSize: number;
  readonly bits: number;
  readonly perBlock: number;
  readonly max: number;
  private readonly blocks = new Map<number, Uint8Array>();
  private readonly dirty = new Set<number>();
  private hint = 0;
  /** Clusters the on-disk metadata uses (see overlap.ts): allocating one means corruption. */
  guard: MetadataGuard | undefined;

  constructor(
    private readonly file: HostFile,
    readonly clusterBits: number,
    refcountOrder: number,
    private table: number[],
    private tableOffset: number,
    /** Points the header at a new refcount table (one write, then a sync, by the caller). */
    private readonly setHeaderTable: (offset: number, clusters: number) => Promise<void>,
  ) {
    this.clusterSize = 2 ** clusterBits;
    this.bits = 2 ** refcountOrder;
    this.perBlock = (this.clusterSize * 8) / this.bits;
    this.max = this.bits >= 53 ? Number.MAX_SAFE_INTEGER : 2 ** this.bits - 1;
  }

  static async load(
    file: HostFile,
    clusterBits: number,
    refcountOrder: number,
    tableOffset: number,
    tableClusters: number,
    setHeaderTable: (offset: number, clusters: number) => Promise<void>,
  ): Promise<Refcounts> {
    const cs = 2 ** clusterBits;
    const raw = await file.read(tableOffset, tableClusters * cs);
    const dv = new DataView(raw.buffer);
    const table: number[] = [];
    for (let i = 0; i < raw.length / 8; i++) {
      const hi = dv.getUint32(i * 8);
      if (hi >= 0x200000) throw new Qcow2CorruptError(`refcount table entry ${i} is too large`);
      const o = hi * 2 ** 32 + dv.getUint32(i * 8 + 4);
      if (o % cs !== 0) {
        throw new Qcow2CorruptError(`refcount block ${i} at ${o} is not cluster aligned`);
      }
      if (o !== 0 && (o < cs || o + cs > file.size)) {
        throw new Qcow2CorruptError(`refcount block ${i} at ${o} lies outside the file`);
      }
      table.push(o);
    }
    return new Refcounts(file, clusterBits, refcountOrder, table, tableOffset, setHeaderTable);
  }

  get tableLength(): number {
    return this.table.length;
  }

  /** Offsets of the refcount blocks (0 = none), for the consistency checker. */
  tableEntries(): readonly number[] {
    return this.table;
  }

  get tableRange(): [number, number] {
    return [this.tableOffset, this.table.length * 8];
  }

  async get(cluster: number): Promise<number> {
    const rb = Math.floor(cluster / this.perBlock);
    if (rb >= this.table.length || this.table[rb] === 0) return 0;
    return this.entry(await this.block(rb), cluster % this.perBlock);
  }

  /** Sets a refcount in memory (written by writeDirty); the cluster must already be covered. */
  async set(cluster: number, value: number): Promise<void> {
    if (value < 0 || value > this.max) {
      throw new Qcow2CorruptError(`refcount of cluster ${cluster} would be ${value}`);
    }
    const rb = Math.floor(cluster / this.perBlock);
    if (rb >= this.table.length || this.table[rb] === 0) {
      if (value === 0) return;
      throw new Qcow2CorruptError(`cluster ${cluster} is not covered by a refcount block`);
    }
    this.setEntry(await this.block(rb), cluster % this.perBlock, value);
    this.dirty.add(rb);
    if (value === 0) this.guard?.release(cluster);
    if (value === 0 && cluster < this.hint) this.hint = cluster;
  }

  async increment(cluster: number): Promise<void> {
    await this.set(cluster, (await this.get(cluster)) + 1);
  }

  async decrement(cluster: number): Promise<void> {
    const v = await this.get(cluster);
    if (v === 0) throw new Qcow2CorruptError(`refcount of cluster ${cluster} would drop below 0`);
    await this.set(cluster, v - 1);
  }

  /** Allocates one free cluster (refcount 0 → 1, in memory) and returns its index. */
  async allocate(): Promise<number> {
    for (let c = Math.max(this.hint, 1); ; c++) {
      const rb = Math.floor(c / this.perBlock);
      if (rb >= this.table.length) {
        await this.grow(c);
        continue;
      }
      if (this.table[rb] === 0) {
        await this.newBlockAt(c, rb);
        continue;
      }
      const blk = await this.block(rb);
      // Skip whole full blocks quickly: most scans start at the hint near the end anyway.
      const i = c % this.perBlock;
      if (this.entry(blk, i) !== 0) continue;
      if (this.guard && this.guard.overlap(c * this.clusterSize, 1) >= 0) {
        throw new Qcow2CorruptError(
          `the refcounts say cluster ${c} is free, but the image's metadata uses it ` +
            '(repair the refcounts with `img check -r all`)',
        );
      }
      this.setEntry(blk, i, 1);
      this.dirty.add(rb);
      this.hint = c + 1;
      return c;
    }
  }

  /** Allocates `n` contiguous free clusters (in memory) and returns the first one's index. */
  async allocateRun(n: number): Promise<number> {
    let run: number[] = [];
    const spare: number[] = [];
    while (run.length < n) {
      const c = await this.allocate();
      if (run.length > 0 && c !== run[run.length - 1] + 1) {
        spare.push(...run);
        run = [];
      }
      run.push(c);
    }
    for (const c of spare) await this.set(c, 0);
    return run[0];
  }

  /** Writes the refcount blocks changed in memory (no sync: the caller orders that). */
  async writeDirty(): Promise<boolean> {
    if (this.dirty.size === 0) return false;
    const rbs = [...this.dirty].sort((a, b) => a - b);
    this.dirty.clear();
    for (const rb of rbs) await this.file.writev(this.table[rb], [this.blocks.get(rb)!]);
    return true;
  }

  get hasDirty(): boolean {
    return this.dirty.size > 0;
  }

  /**
   * A missing refcount block for the range holding free cluster `c`: placed at `c` itself, so it
   * describes its own cluster; written and synced before the table entry that points at it.
   */
  private async newBlockAt(c: number, rb: number): Promise<void> {
    const blk = new Uint8Array(this.clusterSize);
    this.setEntry(blk, c % this.perBlock, 1);
    const off = c * this.clusterSize;
    await this.file.writev(off, [blk]);
    await this.file.sync();
    this.blocks.set(rb, blk);
    this.table[rb] = off;
    const e = new Uint8Array(8);
    new DataView(e.buffer).setBigUint64(0, BigInt(off));
    await this.file.writev(this.tableOffset + rb * 8, [e]);
    await this.file.sync();
  }

  /**
   * The table is too short for cluster `c` (and all clusters from `c` on are free, since
   * nothing past the table's reach can be in use). Builds a larger table at `c`, followed by
   * the new refcount blocks that cover the table and themselves; syncs; points the header at
   * it; syncs; then releases the old table.
   */
  private async grow(c: number): Promise<void> {
    const cs = this.clusterSize;
    const perTableCluster = cs / 8;
    let entries = Math.max(Math.floor(c / this.perBlock) + 1, Math.ceil(this.table.length * 1.5));
    let nB = 0;
    let nT = 0;
    for (;;) {
      nT = Math.ceil(entries / perTableCluster);
      const last = c + nT + nB - 1;
      const needEntries = Math.floor(last / this.perBlock) + 1;
      const need = needEntries - Math.floor(c / this.perBlock);
      if (needEntries > entries) {
        entries = needEntries;
        continue;
      }
      if (need === nB) break;
      nB = need;
    }
    entries = nT * perTableCluster;
    if (entries * 8 > MAX_REFTABLE_BYTES) {
      throw new Qcow2CorruptError('the image is too large for its refcount table');
    }
    const first = Math.floor(c / this.perBlock);
    const newBlocks: Uint8Array[] = [];
    for (let j = 0; j < nB; j++) newBlocks.push(new Uint8Array(cs));
    for (let k = c; k < c + nT + nB; k++) {
      this.setEntry(newBlocks[Math.floor(k / this.perBlock) - first], k % this.perBlock, 1);
    }
    const newTable = [...this.table];
    while (newTable.length < entries) newTable.push(0);
    for (let j = 0; j < nB; j++) newTable[first + j] = (c + nT + j) * cs;
    const raw = new Uint8Array(nT * cs);
    const dv = new DataView(raw.buffer);
    newTable.forEach((o, i) => dv.setBigUint64(i * 8, BigInt(o)));
    await this.file.writev((c + nT) * cs, newBlocks);
    await this.file.writev(c * cs, [raw]);
    await this.file.sync();
    await this.setHeaderTable(c * cs, nT);
    const oldOffset = this.tableOffset;
    const oldClusters = Math.ceil((this.table.length * 8) / cs);
    this.table = newTable;
    this.tableOffset = c * cs;
    newBlocks.forEach((b, j) => this.blocks.set(first + j, b));
    // The header no longer points at the old table (durable): its clusters are free now.
    for (let k = 0; k < oldClusters; k++) await this.decrement(oldOffset / cs + k);
  }

  private async block(rb: number): Promise<Uint8Array> {
    let b = this.blocks.get(rb);
    if (!b) {
      b = await this.file.read(this.table[rb], this.clusterSize);
      this.blocks.set(rb, b);
    }
    return b;
  }

  private entry(b: Uint8Array, i: number): number {
    switch (this.bits) {
      case 1:
      case 2:
      case 4: {
        const bit = i * this.bits;
        return (b[bit >> 3] >> (bit & 7)) & (this.max as number);
      }
      case 8:
        return b[i];
      case 16:
        return (b[i * 2] << 8) | b[i * 2 + 1];
      case 32:
        return new DataView(b.buffer, b.byteOffset).getUint32(i * 4);
      default: {
        const v = new DataView(b.buffer, b.byteOffset).getBigUint64(i * 8);
        if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
          throw new Qcow2CorruptError(`refcount ${v} is beyond what this implementation counts`);
        }
        return Number(v);
      }
    }
  }

  private setEntry(b: Uint8Array, i: number, v: number): void {
    switch (this.bits) {
      case 1:
      case 2:
      case 4: {
        const bit = i * this.bits;
        const byte = bit >> 3;
        const sh = bit & 7;
        b[byte] = (b[byte] & ~(this.max << sh)) | (v << sh);
        return;
      }
      case 8:
        b[i] = v;
        return;
      case 16:
        b[i * 2] = v >> 8;
        b[i * 2 + 1] = v & 0xff;
        return;
      case 32:
        new DataView(b.buffer, b.byteOffset).setUint32(i * 4, v);
        return;
      default:
        new DataView(b.buffer, b.byteOffset).setBigUint64(i * 8, BigInt(v));
    }
  }
}
