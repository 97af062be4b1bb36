/**
 * One disk of block-sched's "two disks in two worker threads" runs, as one VM's worker would
 * hold it: installs the host's shared cfq memory, opens the image under the given policy, runs
 * its reader (flood or random) until the deadline and posts the figures.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openDisk } from '../devices/block/index.js';
import { setProcessCfq } from '../devices/block/cfq.js';
import { SharedCfqCoordinator } from '../devices/block/cfq-shared.js';
import type { SchedulerPolicy } from '../main/vm/config.js';
import { floodReads, randomReads } from './competing-readers.js';

export interface ThreadDiskJob {
  role: 'flood' | 'random';
  path: string;
  policy: SchedulerPolicy;
  direct: boolean;
  inFlight: number;
  /** Wall-clock start and end (Date.now() ms), the same for both threads. */
  startAt: number;
  endAt: number;
  seed: number;
  cfqMemory: SharedArrayBuffer;
}

export interface ThreadDiskResult {
  /** Bytes (flood) or reads (random) done. */
  done: number;
  secs: number;
  p50us: number;
  p99us: number;
}

const job = workerData as ThreadDiskJob;
setProcessCfq(new SharedCfqCoordinator(job.cfqMemory));
const disk = await openDisk(
  { path: job.path, format: 'raw', readOnly: true, cache: 'writeback', sched: job.policy },
  { inFlight: job.inFlight, direct: job.direct },
);
await new Promise((r) => setTimeout(r, Math.max(0, job.startAt - Date.now())));
const t0 = performance.now();
const deadline = t0 + (job.endAt - Date.now());
const done =
  job.role === 'flood'
    ? await floodReads(disk, deadline)
    : await randomReads(disk, deadline, job.seed);
const secs = (performance.now() - t0) / 1000;
const lat = disk.stats().latencyUs;
await disk.close();
const result: ThreadDiskResult = { done, secs, p50us: lat.p50, p99us: lat.p99 };
parentPort!.postMessage(result);
