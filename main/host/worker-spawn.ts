/**
 * Starting VM worker threads, and starting one ahead: `wasmvisor run` starts its VM's worker
 * before it loads the rest of the CLI, so the worker's ~30 ms of thread start and module loading
 * overlap the main thread's (bench/startup.ts).
 */
import { Worker } from 'node:worker_threads';
import { createCfqMemory } from '../../devices/block/cfq-shared.js';
import type { VmWorkerData } from '../worker/protocol.js';
import { startupMark } from './startup-trace.js';

/** cfq's slices span the disks of every VM this process runs: one memory for all workers. */
export const cfqMemory = createCfqMemory();

/** The worker started ahead, until a VM takes it; `dead` if it ended before that. */
let ahead: { path: string; worker: Worker; dead: boolean; died: () => void } | undefined;

/** A VM worker running `path`: the one started ahead if it is for `path` and alive, else a new one. */
export function spawnVmWorker(path: string): Worker {
  const a = ahead;
  if (a?.path === path) {
    ahead = undefined;
    a.worker.off('error', a.died).off('exit', a.died);
    if (!a.dead) {
      a.worker.ref();
      return a.worker;
    }
  }
  const workerData: VmWorkerData = { cfqMemory };
  return new Worker(path, { workerData });
}

/**
 * Starts a worker for `path` now, for the next spawnVmWorker(path). Until then it does not keep
 * the process alive (a command that fails to parse still exits), and if it ends by itself the VM
 * gets a new one, whose failure is then reported as any worker's.
 */
export function startVmWorkerAhead(path: string): void {
  if (ahead) return;
  const worker = new Worker(path, { workerData: { cfqMemory } satisfies VmWorkerData });
  const a = { path, worker, dead: false, died: () => (a.dead = true) };
  startupMark('worker started ahead');
  worker.unref();
  worker.on('error', a.died).on('exit', a.died);
  ahead = a;
}
