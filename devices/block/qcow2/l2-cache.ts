/**
 * The L2 table cache (QEMU's `l2-cache-size`): tables keyed by their L1 index, least recently
 * used first out. A table changed in memory stays (dirty) until the image's metadata write-back
 * has put it on disk in the right order, so eviction only ever drops clean tables; the image
 * triggers a write-back when too many are dirty.
 */
export interface CachedTable {
  table: Uint8Array;
  dirty: boolean;
}

export class L2Cache {
  private readonly tables = new Map<number, CachedTable>();
  hits = 0;
  misses = 0;

  constructor(readonly capacity: number) {}

  get(l1i: number): CachedTable | undefined {
    const t = this.tables.get(l1i);
    if (t) {
      this.hits++;
      // Re-insert: Map iteration order is insertion order, so the front is the LRU end.
      this.tables.delete(l1i);
      this.tables.set(l1i, t);
    }
    return t;
  }

  put(l1i: number, table: Uint8Array, dirty: boolean): CachedTable {
    const t = { table, dirty };
    this.tables.set(l1i, t);
    this.trim();
    return t;
  }

  drop(l1i: number): void {
    this.tables.delete(l1i);
  }

  /** Forgets every table (all must be clean: written back). */
  clear(): void {
    this.tables.clear();
  }

  dirtyTables(): [number, CachedTable][] {
    return [...this.tables].filter(([, t]) => t.dirty);
  }

  get dirtyCount(): number {
    let n = 0;
    for (const t of this.tables.values()) if (t.dirty) n++;
    return n;
  }

  get size(): number {
    return this.tables.size;
  }

  /** Drops clean tables, oldest first, until within capacity. */
  trim(): void {
    if (this.tables.size <= this.capacity) return;
    for (const [k, t] of this.tables) {
      if (this.tables.size <= this.capacity) return;
      if (!t.dirty) this.tables.delete(k);
    }
  }
}
