/**
 * virtio-balloon (virtio 1.2 §5.5): the host asks for guest pages (num_pages), the guest's
 * driver hands them over on the inflate queue and takes them back on the deflate queue, and
 * reports `actual`. Pages the balloon holds are given back to the host OS (madvise through the
 * addon, see host-memory.ts), so the process's RSS really drops; when the guest reuses them they
 * read as zeros. The device never reads or writes a page the balloon holds.
 *
 * Optional features, each a device setting: STATS_VQ (the guest's memory statistics, requested
 * every statsPeriodS seconds), DEFLATE_ON_OOM (the guest may deflate on its own under memory
 * pressure), FREE_PAGE_REPORTING (the guest reports free page blocks, which are released the
 * same way, with no target needed), and PAGE_POISON (the guest says what free pages must
 * contain; reported pages are released only when that is zero, since released pages read as
 * zero).
 *
 * Queues are numbered in order of the ones that exist: inflate 0, deflate 1, then stats (with
 * STATS_VQ), then reporting (with FREE_PAGE_REPORTING). That is what Linux's virtio-mmio and QEMU
 * do (a missing queue takes no index), so the roles are decided from the negotiated features.
 */
import type { DirtyLog } from '../../platform/dirty-log.js';
import { DEVICE_ID, bit } from '../constants.js';
import type { VirtioContext, VirtioDevice } from '../device.js';
import type { Virtqueue } from '../queue.js';
import type { DescriptorChain } from '../ring.js';
import { NOT_RETURNED, type PageReleaser } from './host-memory.js';

/** Feature bits (§5.5.3). */
export const BALLOON_F = {
  /** Never offered: the guest may reuse deflated pages at once (they read as zeros). */
  mustTellHost: 0,
  statsVq: 1,
  deflateOnOom: 2,
  freePageHint: 3,
  pagePoison: 4,
  reporting: 5,
} as const;

/** The balloon's page size: PFNs on the queues are in 4 KiB units whatever the guest's pages. */
export const BALLOON_PAGE = 4096;

/** Statistic tags (§5.5.6.3) and the names the API, monitor and UI use. */
export const STAT_TAGS = [
  'swapIn',
  'swapOut',
  'majorFaults',
  'minorFaults',
  'memFree',
  'memTotal',
  'memAvailable',
  'diskCaches',
  'hugetlbAllocations',
  'hugetlbFailures',
] as const;
export type StatName = (typeof STAT_TAGS)[number];
export type GuestMemStats = Partial<Record<StatName, number>>;
const STAT_ENTRY = 10; // le16 tag, le64 value, packed

/** PFNs read from one chain at most: Linux sends 256; more only costs host time. */
export const MAX_PFNS_PER_CHAIN = 4096;
/** Stats entries read at most (10 tags are defined; a few unknown ones are tolerated). */
const MAX_STATS = 32;

export interface VirtioBalloonOptions {
  name?: string;
  /** Guest RAM (the core's view) and its guest-physical base. */
  ram: Uint8Array;
  ramBase: number;
  /** The dirty-page log: a page given back to the host reads as zeros from then on. */
  dirty?: DirtyLog;
  /** Offer STATS_VQ and ask for statistics every this many seconds (0 = no stats queue). */
  statsPeriodS?: number;
  deflateOnOom?: boolean;
  freePageReporting?: boolean;
  /** Host page release; null = pages stay resident (notReturnedReason says why). */
  releaser: PageReleaser | null;
  notReturnedReason?: string;
  queueSize?: number;
}

export interface VirtioBalloonMetrics {
  [name: string]: number;
  inflate_chains: number;
  deflate_chains: number;
  pages_inflated: number;
  pages_deflated: number;
  /**
   * Pages the guest took back while the balloon held no more than the target, i.e. without the
   * host asking: with DEFLATE_ON_OOM, the guest deflating under memory pressure.
   */
  pages_deflated_unasked: number;
  /** PFNs outside guest RAM (ignored). */
  bad_pfns: number;
  /** Inflate of a page already held, or deflate of a page not held (ignored). */
  duplicate_pfns: number;
  /** PFNs beyond MAX_PFNS_PER_CHAIN, and trailing bytes that are not a whole PFN (ignored). */
  ignored_pfns: number;
  /** Bytes given back to the host OS (balloon and reports), cumulative. */
  bytes_released: number;
  release_errors: number;
  reports: number;
  reported_bytes: number;
  /** Reports left resident because the guest poisons free pages with a non-zero value. */
  reports_kept_poison: number;
  stats_updates: number;
  /** Stats buffers that were empty, writable or not a whole number of entries. */
  stats_bad: number;
  target_changes: number;
}

export interface VirtioBalloonState {
  version: 1;
  numPages: number;
  actual: number;
  poisonVal: number;
  /** The stats buffer the device holds (-1: none). */
  statsHead: number;
  /** The guest's last statistics. */
  stats: GuestMemStats;
  /** Pages the balloon holds, as [first PFN offset from RAM base, count] runs. */
  held: [number, number][];
}

/** What the host API, the monitor and the UI show. Sizes in bytes. */
export interface BalloonInfo {
  ramBytes: number;
  /** Balloon size the host asked for (num_pages) and what the guest says it gave (actual). */
  targetBytes: number;
  actualBytes: number;
  /** Pages the device holds (from the queues; equals actual for a well-behaved driver). */
  heldBytes: number;
  /** Whether held and reported pages are given back to the host OS. */
  returnedToHost: boolean;
  /** When not: why ("memory not returned to host: …"). */
  notReturned?: string;
  bytesReleased: number;
  /** What the guest took back without the host asking (deflate on OOM), cumulative. */
  deflatedUnaskedBytes: number;
  features: { stats: boolean; deflateOnOom: boolean; freePageReporting: boolean; poison: boolean };
  /** The guest's memory statistics (bytes / counts) and when they arrived (ms, host clock). */
  stats: GuestMemStats;
  statsAt?: number;
}

export class VirtioBalloon implements VirtioDevice {
  readonly deviceId = DEVICE_ID.balloon;
  readonly name: string;
  readonly features: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly metrics: VirtioBalloonMetrics = {
    inflate_chains: 0,
    deflate_chains: 0,
    pages_inflated: 0,
    pages_deflated: 0,
    pages_deflated_unasked: 0,
    bad_pfns: 0,
    duplicate_pfns: 0,
    ignored_pfns: 0,
    bytes_released: 0,
    release_errors: 0,
    reports: 0,
    reported_bytes: 0,
    reports_kept_poison: 0,
    stats_updates: 0,
    stats_bad: 0,
    target_changes: 0,
  };
  onConfigChange?: () => void;
  /** Called when the guest's statistics arrive. */
  onStats?: (stats: GuestMemStats) => void;

  private readonly ram: Uint8Array;
  private readonly ramBase: number;
  private readonly dirty: DirtyLog | undefined;
  private readonly ramPages: number;
  /** One byte per balloon page: 1 = held by the balloon. */
  private readonly held: Uint8Array;
  private heldPages = 0;
  private readonly statsPeriodMs: number;
  private readonly releaser: PageReleaser | null;
  private readonly notReturnedReason: string;

  private ctx: VirtioContext | undefined;
  private statsQ: Virtqueue | undefined;
  private reportQ: Virtqueue | undefined;
  private numPages = 0;
  private actual = 0;
  private poisonVal = 0;
  private statsHead = -1;
  private lastStatsRequest = 0;
  private guestStats: GuestMemStats = {};
  private statsAt: number | undefined;

  constructor(o: VirtioBalloonOptions) {
    this.name = o.name ?? 'virtio-balloon0';
    this.ram = o.ram;
    this.ramBase = o.ramBase;
    this.dirty = o.dirty;
    this.ramPages = Math.floor(o.ram.length / BALLOON_PAGE);
    this.held = new Uint8Array(this.ramPages);
    this.statsPeriodMs = Math.max(0, (o.statsPeriodS ?? 0) * 1000);
    this.releaser = o.releaser;
    this.notReturnedReason = o.notReturnedReason ?? 'no page releaser';
    let f = bit(BALLOON_F.pagePoison);
    const qs = o.queueSize ?? 128;
    const sizes = [qs, qs];
    if (this.statsPeriodMs > 0) {
      f |= bit(BALLOON_F.statsVq);
      sizes.push(qs);
    }
    if (o.deflateOnOom) f |= bit(BALLOON_F.deflateOnOom);
    if (o.freePageReporting) {
      f |= bit(BALLOON_F.reporting);
      // Linux refuses a reporting queue shorter than PAGE_REPORTING_CAPACITY (32).
      sizes.push(Math.max(32, qs));
    }
    this.features = f;
    this.queueMaxSizes = sizes;
  }

  private has(ctx: VirtioContext, b: number): boolean {
    return (ctx.features & bit(b)) !== 0n;
  }

  // --- configuration space (§5.5.4): num_pages, actual, free_page_hint_cmd_id, poison_val ---

  readConfig(offset: number, size: number): number {
    const img = new DataView(new ArrayBuffer(16));
    img.setUint32(0, this.numPages, true);
    img.setUint32(4, this.actual, true);
    img.setUint32(8, 0, true); // no free page hinting
    img.setUint32(12, this.poisonVal, true);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) {
      const o = offset + i;
      v = v * 256 + (o >= 0 && o < 16 ? img.getUint8(o) : 0);
    }
    return v >>> 0;
  }

  writeConfig(offset: number, size: number, value: number): void {
    // The driver writes `actual` and `poison_val`; num_pages and the hint id are the device's.
    const apply = (field: number, cur: number): number => {
      const img = new DataView(new ArrayBuffer(4));
      img.setUint32(0, cur, true);
      for (let i = 0; i < size; i++) {
        const o = offset + i - field;
        if (o >= 0 && o < 4) img.setUint8(o, (value >>> (8 * i)) & 0xff);
      }
      return img.getUint32(0, true);
    };
    if (offset < 8 && offset + size > 4) this.actual = apply(4, this.actual);
    if (offset < 16 && offset + size > 12) this.poisonVal = apply(12, this.poisonVal);
  }

  activate(ctx: VirtioContext): void {
    this.ctx = ctx;
    let next = 2;
    this.statsQ = this.has(ctx, BALLOON_F.statsVq) ? ctx.queues[next++] : undefined;
    this.reportQ = this.has(ctx, BALLOON_F.reporting) ? ctx.queues[next++] : undefined;
  }

  notify(queue: number): void {
    const ctx = this.ctx;
    if (!ctx) return;
    const q = ctx.queues[queue];
    if (!q) return;
    if (queue === 0 || queue === 1) this.serveBalloon(ctx, q, queue === 0);
    else if (q === this.statsQ) this.serveStats(ctx, q);
    else if (q === this.reportQ) this.serveReports(ctx, q);
  }

  // --- inflate / deflate -----------------------------------------------------------------

  private serveBalloon(ctx: VirtioContext, q: Virtqueue, inflate: boolean): void {
    let served = 0;
    for (let c = q.pop(); c; c = q.pop()) {
      if (inflate) {
        this.metrics.inflate_chains++;
        this.inflate(c);
      } else {
        this.metrics.deflate_chains++;
        this.deflate(c);
      }
      q.push(c.head, 0);
      served++;
    }
    if (served) ctx.signalUsed(q);
  }

  /** The PFN array of a chain (readable segments), as page indices into RAM; bad ones counted. */
  private pagesOf(c: DescriptorChain): number[] {
    const pages: number[] = [];
    let seen = 0;
    for (const s of c.segments) {
      if (s.writable) continue;
      const v = s.view;
      const whole = v.length - (v.length % 4);
      if (whole !== v.length) this.metrics.ignored_pfns++;
      const dv = new DataView(v.buffer, v.byteOffset, whole);
      for (let o = 0; o < whole; o += 4) {
        if (seen >= MAX_PFNS_PER_CHAIN) {
          this.metrics.ignored_pfns += (whole - o) / 4;
          break;
        }
        seen++;
        const page = dv.getUint32(o, true) - this.ramBase / BALLOON_PAGE;
        if (page < 0 || page >= this.ramPages) this.metrics.bad_pfns++;
        else pages.push(page);
      }
    }
    return pages;
  }

  private inflate(c: DescriptorChain): void {
    const fresh: number[] = [];
    for (const p of this.pagesOf(c)) {
      if (this.held[p]) {
        this.metrics.duplicate_pfns++;
        continue;
      }
      this.held[p] = 1;
      this.heldPages++;
      this.metrics.pages_inflated++;
      fresh.push(p);
    }
    if (fresh.length) this.releaseHeld(fresh);
  }

  private deflate(c: DescriptorChain): void {
    for (const p of this.pagesOf(c)) {
      if (!this.held[p]) {
        this.metrics.duplicate_pfns++;
        continue;
      }
      if (this.heldPages <= this.numPages) this.metrics.pages_deflated_unasked++;
      this.held[p] = 0;
      this.heldPages--;
      this.metrics.pages_deflated++;
      // Nothing to do on the host: released pages fault back in as zeros when touched. (With
      // PAGE_POISON the driver rewrites deflated pages itself, §5.5.6.4.)
    }
  }

  /**
   * Releases the host pages made up entirely of held balloon pages among `pages` (with 4 KiB
   * host pages: exactly those). Runs of contiguous pages go to the host in one call.
   */
  private releaseHeld(pages: number[]): void {
    const r = this.releaser;
    if (!r) return;
    const per = Math.max(1, r.pageSize / BALLOON_PAGE);
    const hostPages: number[] = [];
    for (const p of pages) hostPages.push(Math.floor(p / per));
    hostPages.sort((a, b) => a - b);
    const full = (hp: number): boolean => {
      const first = hp * per;
      if (first + per > this.ramPages) return false;
      for (let i = 0; i < per; i++) if (!this.held[first + i]) return false;
      return true;
    };
    let runStart = -1;
    let runEnd = -1; // exclusive, in host pages
    for (let i = 0; i < hostPages.length; i++) {
      const hp = hostPages[i];
      if (i > 0 && hp === hostPages[i - 1]) continue;
      if (!full(hp)) continue;
      if (hp === runEnd) runEnd++;
      else {
        if (runStart >= 0) this.release(runStart * r.pageSize, (runEnd - runStart) * r.pageSize);
        runStart = hp;
        runEnd = hp + 1;
      }
    }
    if (runStart >= 0) this.release(runStart * r.pageSize, (runEnd - runStart) * r.pageSize);
  }

  private release(offset: number, length: number): void {
    try {
      this.dirty?.markOffset(offset, length);
      this.releaser!.release(this.ram, offset, length);
      this.metrics.bytes_released += length;
    } catch {
      this.metrics.release_errors++;
    }
  }

  // --- free page reporting (§5.5.6.5) ----------------------------------------------------

  private serveReports(ctx: VirtioContext, q: Virtqueue): void {
    let served = 0;
    const poisoned = this.has(ctx, BALLOON_F.pagePoison) && this.poisonVal !== 0;
    for (let c = q.pop(); c; c = q.pop()) {
      this.metrics.reports++;
      for (const s of c.segments) {
        this.metrics.reported_bytes += s.view.length;
        if (poisoned) {
          // Released pages read as zero, but the guest expects poison_val there (§5.5.6.4).
          this.metrics.reports_kept_poison++;
          continue;
        }
        const r = this.releaser;
        if (!r) continue;
        // The ring processor has checked the buffer lies in RAM; release the whole host pages
        // inside it, never a neighbour's.
        const off = s.addr - this.ramBase;
        const start = Math.ceil(off / r.pageSize) * r.pageSize;
        const end = Math.floor((off + s.view.length) / r.pageSize) * r.pageSize;
        if (end > start) this.release(start, end - start);
      }
      q.push(c.head, 0);
      served++;
    }
    if (served) ctx.signalUsed(q);
  }

  // --- statistics (§5.5.6.3) -------------------------------------------------------------

  private serveStats(ctx: VirtioContext, q: Virtqueue): void {
    for (let c = q.pop(); c; c = q.pop()) {
      if (this.statsHead >= 0) {
        // The driver keeps one buffer; a second one replaces the first, which goes back.
        q.push(this.statsHead, 0);
        ctx.signalUsed(q);
      }
      this.statsHead = c.head;
      this.readStats(c);
    }
  }

  private readStats(c: DescriptorChain): void {
    const bytes = new Uint8Array(Math.min(c.readable, MAX_STATS * STAT_ENTRY));
    let n = 0;
    for (const s of c.segments) {
      if (s.writable || n >= bytes.length) continue;
      const take = Math.min(s.view.length, bytes.length - n);
      bytes.set(s.view.subarray(0, take), n);
      n += take;
    }
    if (c.readable === 0 || c.writable !== 0 || c.readable % STAT_ENTRY !== 0) {
      this.metrics.stats_bad++;
    }
    const dv = new DataView(bytes.buffer);
    const stats: GuestMemStats = {};
    for (let o = 0; o + STAT_ENTRY <= n; o += STAT_ENTRY) {
      const tag = dv.getUint16(o, true);
      const name = STAT_TAGS[tag];
      if (name) stats[name] = Number(dv.getBigUint64(o + 2, true));
    }
    if (n < STAT_ENTRY) return;
    this.guestStats = stats;
    this.statsAt = Date.now();
    this.metrics.stats_updates++;
    this.onStats?.(stats);
  }

  /**
   * Drives the stats period: called by the machine's run loop (so a paused VM is not asked).
   * Giving the held buffer back is the request for fresh statistics.
   */
  tick(nowMs: number): void {
    if (!this.statsPeriodMs || !this.ctx || !this.statsQ || this.statsHead < 0) return;
    if (nowMs - this.lastStatsRequest < this.statsPeriodMs) return;
    this.requestStats(nowMs);
  }

  /** Asks the guest for statistics now (they arrive when its driver refills the buffer). */
  requestStats(nowMs = performance.now()): void {
    const q = this.statsQ;
    if (!this.ctx || !q || this.statsHead < 0) return;
    this.lastStatsRequest = nowMs;
    q.push(this.statsHead, 0);
    this.statsHead = -1;
    this.ctx.signalUsed(q);
  }

  // --- the host's side ----------------------------------------------------------------------

  /** Asks the guest to hold `pages` balloon pages (clamped to RAM). */
  setTargetPages(pages: number): void {
    const n = Math.max(0, Math.min(this.ramPages, Math.floor(pages)));
    if (n === this.numPages) return;
    this.numPages = n;
    this.metrics.target_changes++;
    this.onConfigChange?.();
  }

  get targetPages(): number {
    return this.numPages;
  }

  get actualPages(): number {
    return this.actual;
  }

  get heldPageCount(): number {
    return this.heldPages;
  }

  /** Whether the page at RAM offset `page` (balloon pages) is held; for tests and snapshots. */
  isHeld(page: number): boolean {
    return this.held[page] === 1;
  }

  info(): BalloonInfo {
    const ctx = this.ctx;
    return {
      ramBytes: this.ramPages * BALLOON_PAGE,
      targetBytes: this.numPages * BALLOON_PAGE,
      actualBytes: this.actual * BALLOON_PAGE,
      heldBytes: this.heldPages * BALLOON_PAGE,
      returnedToHost: this.releaser !== null,
      notReturned: this.releaser ? undefined : `${NOT_RETURNED}: ${this.notReturnedReason}`,
      bytesReleased: this.metrics.bytes_released,
      deflatedUnaskedBytes: this.metrics.pages_deflated_unasked * BALLOON_PAGE,
      features: {
        stats: !!ctx && this.has(ctx, BALLOON_F.statsVq),
        deflateOnOom: !!ctx && this.has(ctx, BALLOON_F.deflateOnOom),
        freePageReporting: !!ctx && this.has(ctx, BALLOON_F.reporting),
        poison: !!ctx && this.has(ctx, BALLOON_F.pagePoison),
      },
      stats: { ...this.guestStats },
      statsAt: this.statsAt,
    };
  }

  reset(): void {
    // The target is the host's wish and survives; what the driver did is forgotten. Held pages
    // go back to the guest (they were released, so they read as zeros).
    this.ctx = undefined;
    this.statsQ = this.reportQ = undefined;
    this.actual = 0;
    this.poisonVal = 0;
    this.statsHead = -1;
    this.held.fill(0);
    this.heldPages = 0;
  }

  saveState(): VirtioBalloonState {
    const runs: [number, number][] = [];
    for (let p = 0; p < this.ramPages; p++) {
      if (!this.held[p]) continue;
      let e = p;
      while (e < this.ramPages && this.held[e]) e++;
      runs.push([p, e - p]);
      p = e;
    }
    return {
      version: 1,
      numPages: this.numPages,
      actual: this.actual,
      poisonVal: this.poisonVal,
      statsHead: this.statsHead,
      stats: { ...this.guestStats },
      held: runs,
    };
  }

  restoreState(s: unknown): void {
    const st = s as VirtioBalloonState;
    if (st?.version !== 1 || !Array.isArray(st.held)) {
      throw new Error(`${this.name}: unsupported state`);
    }
    this.held.fill(0);
    this.heldPages = 0;
    for (const [p, n] of st.held) {
      if (!(p >= 0 && n > 0 && p + n <= this.ramPages)) {
        throw new Error(`${this.name}: held pages outside RAM in saved state`);
      }
      this.held.fill(1, p, p + n);
      this.heldPages += n;
    }
    this.numPages = st.numPages >>> 0;
    this.actual = st.actual >>> 0;
    this.poisonVal = st.poisonVal >>> 0;
    this.statsHead = st.statsHead;
    this.guestStats = { ...st.stats };
  }
}
