/**
 * Request latency percentiles in constant memory: a log-linear histogram (as in HdrHistogram)
 * with 8 buckets per power of two, so any percentile is within 12.5% of the truth whatever the
 * run length, and recording is O(1) with no allocation.
 */
const SUB_BITS = 3;
const SUB = 1 << SUB_BITS;
/** Microseconds are clamped to 2^31 (~36 min): longer than any request should ever take. */
const MAX_EXP = 30;
const BUCKETS = SUB + (MAX_EXP - SUB_BITS + 1) * SUB;

function bucketOf(us: number): number {
  const v = Math.min(Math.max(Math.floor(us), 0), 2 ** 31 - 1);
  if (v < SUB) return v;
  const e = 31 - Math.clz32(v);
  return SUB + (e - SUB_BITS) * SUB + ((v >> (e - SUB_BITS)) & (SUB - 1));
}

/** [lowest, highest] microseconds a bucket holds. */
function boundsOf(i: number): [number, number] {
  if (i < SUB) return [i, i];
  const e = Math.floor((i - SUB) / SUB) + SUB_BITS;
  const sub = (i - SUB) % SUB;
  const lo = (SUB + sub) * 2 ** (e - SUB_BITS);
  return [lo, lo + 2 ** (e - SUB_BITS) - 1];
}

export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  private count = 0;
  private max = 0;

  record(us: number): void {
    this.counts[bucketOf(us)]++;
    this.count++;
    if (us > this.max) this.max = us;
  }

  /** The latency (µs, bucket midpoint) under which fraction `p` of the requests completed. */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const target = Math.max(1, Math.ceil(p * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= target) {
        const [lo, hi] = boundsOf(i);
        return Math.min((lo + hi) / 2, this.max);
      }
    }
    return this.max;
  }

  summary(): LatencySummary {
    return {
      count: this.count,
      p50: this.percentile(0.5),
      p95: this.percentile(0.95),
      p99: this.percentile(0.99),
      max: this.max,
    };
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.max = 0;
  }
}
