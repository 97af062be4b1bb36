/**
 * A stand-in VM worker for the cross-thread cfq test: one cfq disk whose reads take 1 ms each,
 * flooded with reads (one in flight) through the host's shared cfq memory. Counts its back-end
 * calls in `calls[0]` (shared) so the test sees how far it got; says 'flooding' once it started.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SharedCfqCoordinator } from '../../../devices/block/cfq-shared.js';
import { IoScheduler } from '../../../devices/block/scheduler.js';
import { FakeBackend } from './fake-backend.js';

const { mem, calls, sliceRequests } = workerData as {
  mem: SharedArrayBuffer;
  calls: SharedArrayBuffer;
  sliceRequests: number;
};
const counter = new Int32Array(calls);

class SlowBackend extends FakeBackend {
  override async readv(offset: number, bufs: readonly Uint8Array[]): Promise<void> {
    Atomics.add(counter, 0, 1);
    await new Promise((r) => setTimeout(r, 1));
    return super.readv(offset, bufs);
  }
}

const cfq = new SharedCfqCoordinator(mem, { sliceRequests, sliceMs: 1e9, idleMs: 0 });
const disk = new IoScheduler(new SlowBackend(1 << 26), { policy: 'cfq', inFlight: 1, cfq });
// Every other 4 KiB block, so nothing merges; more than the test needs (≥ 2 s of reads).
const buf = new Uint8Array(4096);
for (let i = 0; i < 2000; i++) void disk.read(i * 8192, buf);
parentPort!.postMessage('flooding');
