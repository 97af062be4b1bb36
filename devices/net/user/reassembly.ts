/**
 * Reassembly of the guest's IP fragments (IPv4, and IPv6's fragment header), as a host stack
 * does before its ICMP echo, UDP and TCP see a datagram: `ping -s 4000 10.0.2.2` and large UDP
 * datagrams arrive in pieces of the guest's MTU.
 *
 * Every fragment is untrusted, so the table is bounded and strict (a string result is the reason
 * to drop, a counter name; nothing here throws):
 * - per datagram: at most 64 KiB of IP payload (offset + length beyond 65535 minus the header
 *   drops the datagram), at most `fragPerDatagram` fragments, fragments other than the last
 *   a multiple of 8 bytes long;
 * - overlaps: any fragment that overlaps another without being an exact repeat of it (same
 *   offset, same length) drops the whole datagram — RFC 5722's rule for IPv6, and ours for IPv4
 *   too (as Linux does since 4.19), so no data is ever chosen between two versions, and the
 *   teardrop family of tricks has nothing to work on; an exact repeat is ignored;
 * - the first fragment (offset 0) must hold the whole transport header (`minL4` bytes, the
 *   caller checks TCP's options after reassembly): nothing is dispatched on a header split
 *   across fragments (RFC 1858, RFC 7112);
 * - globally: at most `fragDatagrams` datagrams in progress and `fragBytes` bytes held; a new
 *   datagram or a fragment over the bound evicts the oldest datagrams in progress (counted), so
 *   a flood of never-completed datagrams cannot keep a real one from completing;
 * - time: a datagram not complete within `fragTimeoutMs` (30 s, Linux's ipfrag_time) is dropped
 *   and counted.
 */
import type { UserNetLimits } from './config.js';
import type { Counters } from './counters.js';

/** One fragment from the guest, its data a view into the frame. */
export interface Fragment {
  /** Identifies the datagram: addresses, protocol and IP identification, per family. */
  key: string;
  /** Byte offset of `data` in the datagram's payload. */
  offset: number;
  /** More fragments follow (not the last). */
  more: boolean;
  data: Uint8Array;
  /**
   * Offset 0 only: the bytes that precede the payload in the rebuilt frame (Ethernet and IP
   * headers), copied and kept until the datagram completes.
   */
  head?: Uint8Array;
  /** Bytes of payload a datagram may hold at most (65535 minus the IP header). */
  maxPayload: number;
  /** Transport header bytes the first fragment must carry. */
  minL4: number;
}

/** A complete datagram: `frame` = head + payload; `headLen` is where the payload starts. */
export interface Reassembled {
  frame: Uint8Array;
  headLen: number;
}

interface Piece {
  offset: number;
  data: Uint8Array;
}

interface Datagram {
  key: string;
  pieces: Piece[];
  head: Uint8Array | undefined;
  /** Payload length, known once the last fragment came. */
  total: number;
  received: number;
  held: number;
  timer: NodeJS.Timeout;
}

export class Reassembly {
  /** In arrival order of their first fragment: the first is the oldest (evicted first). */
  private readonly table = new Map<string, Datagram>();
  private held = 0;

  constructor(
    private readonly limits: UserNetLimits,
    private readonly counters: Counters,
  ) {}

  /** Datagrams in progress. */
  get size(): number {
    return this.table.size;
  }

  /** Bytes the table holds (fragment data and first-fragment headers). */
  get bytes(): number {
    return this.held;
  }

  /**
   * Adds a fragment: the datagram when it completes, undefined while it waits for more, or a
   * counter name when the fragment (and, for most reasons, its whole datagram) is dropped.
   */
  add(f: Fragment): Reassembled | undefined | string {
    const end = f.offset + f.data.length;
    if (end > f.maxPayload) return this.fail(f.key, 'frag_too_big');
    if (f.more && (f.data.length === 0 || f.data.length % 8 !== 0)) {
      return this.fail(f.key, 'frag_length');
    }
    if (f.offset === 0 && f.data.length < f.minL4) return this.fail(f.key, 'frag_header_split');
    let g = this.table.get(f.key);
    if (!g) {
      while (this.table.size > 0 && this.table.size >= this.limits.fragDatagrams)
        this.evictOldest();
      const timer = setTimeout(() => {
        if (this.table.get(f.key) !== g) return;
        this.remove(f.key);
        this.counters.count('drop_frag_timeout');
      }, this.limits.fragTimeoutMs);
      timer.unref();
      g = { key: f.key, pieces: [], head: undefined, total: -1, received: 0, held: 0, timer };
      this.table.set(f.key, g);
    }
    if (!f.more) {
      if ((g.total >= 0 && g.total !== end) || g.received > end || this.lastEnd(g) > end) {
        return this.fail(f.key, 'frag_overlap');
      }
    } else if (g.total >= 0 && end > g.total) return this.fail(f.key, 'frag_overlap');
    // Sorted by offset: find where it goes and whether it touches a neighbour.
    let i = 0;
    while (i < g.pieces.length && g.pieces[i].offset < f.offset) i++;
    const at = g.pieces[i];
    if (at && at.offset === f.offset && at.data.length === f.data.length) {
      this.counters.count('frag_duplicate');
      return undefined;
    }
    const prev = g.pieces[i - 1];
    if ((prev && prev.offset + prev.data.length > f.offset) || (at && at.offset < end)) {
      return this.fail(f.key, 'frag_overlap');
    }
    if (g.pieces.length >= this.limits.fragPerDatagram) return this.fail(f.key, 'frag_count');
    const cost = f.data.length + (f.head?.length ?? 0);
    while (this.held + cost > this.limits.fragBytes && this.oldestOther(f.key)) {
      this.evictOldest(f.key);
    }
    if (this.held + cost > this.limits.fragBytes) return this.fail(f.key, 'frag_memory');
    g.pieces.splice(i, 0, { offset: f.offset, data: f.data.slice() });
    if (f.offset === 0 && f.head) g.head = f.head.slice();
    if (!f.more) g.total = end;
    g.received += f.data.length;
    g.held += cost;
    this.held += cost;
    this.counters.count('frag_in');
    if (g.total < 0 || g.received !== g.total || !g.head) return undefined;
    this.remove(f.key);
    const frame = new Uint8Array(g.head.length + g.total);
    frame.set(g.head, 0);
    for (const p of g.pieces) frame.set(p.data, g.head.length + p.offset);
    this.counters.count('frag_reassembled');
    return { frame, headLen: g.head.length };
  }

  /** Drops every datagram in progress (the network closes). */
  close(): void {
    for (const key of [...this.table.keys()]) this.remove(key);
  }

  private lastEnd(g: Datagram): number {
    const p = g.pieces[g.pieces.length - 1];
    return p ? p.offset + p.data.length : 0;
  }

  /** Drops the datagram `key` (if one is in progress); the reason is the counter for the caller. */
  private fail(key: string, reason: string): string {
    if (this.remove(key)) this.counters.count('frag_datagrams_dropped');
    return reason;
  }

  private oldestOther(key: string): boolean {
    for (const k of this.table.keys()) if (k !== key) return true;
    return false;
  }

  private evictOldest(except?: string): void {
    for (const k of this.table.keys()) {
      if (k === except) continue;
      this.remove(k);
      this.counters.count('drop_frag_evicted');
      return;
    }
  }

  private remove(key: string): boolean {
    const g = this.table.get(key);
    if (!g) return false;
    clearTimeout(g.timer);
    this.table.delete(key);
    this.held -= g.held;
    return true;
  }
}
