/**
 * The host side of one VM: its worker thread, state, console scrollback, stats history and
 * device list. The worker runs the guest; this object only relays messages.
 */
import { Worker } from 'node:worker_threads';
import type { VmConfig } from '../vm/config.js';
import type { DeviceRow, VmExit, VmState, VmStats } from './api-types.js';
import type { FromWorker, ToWorker } from '../worker/protocol.js';
import { ByteRing } from './byte-ring.js';

/** Stats kept for the charts: 5 minutes at 4 Hz. */
const HISTORY_SAMPLES = 5 * 60 * 4;
/** How long a graceful stop may take before the worker is terminated. */
const STOP_GRACE_MS = 3000;

export interface VmRunnerEvents {
  state(state: VmState, lastExit: VmExit | undefined): void;
  stats(stats: VmStats): void;
  devices(devices: DeviceRow[]): void;
  console(bytes: Uint8Array): void;
  log(message: string): void;
}

export class VmRunner {
  state: VmState = 'stopped';
  lastExit: VmExit | undefined;
  readonly scrollback = new ByteRing();
  private worker: Worker | undefined;
  private exitFromWorker: VmExit | undefined;
  private devices: DeviceRow[] = [];
  private history: VmStats[] = [];
  private stopTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly workerPath: string,
    private readonly events: VmRunnerEvents,
  ) {}

  private send(m: ToWorker): void {
    this.worker?.postMessage(m);
  }

  private setState(s: VmState): void {
    this.state = s;
    this.events.state(s, this.lastExit);
  }

  start(cfg: VmConfig): void {
    if (this.worker) throw new Error('already running');
    this.scrollback.clear();
    this.history = [];
    this.lastExit = undefined;
    this.exitFromWorker = undefined;
    const w = new Worker(this.workerPath);
    this.worker = w;
    w.on('message', (m: FromWorker) => this.onMessage(m));
    w.on('error', (e) => {
      this.exitFromWorker ??= { kind: 'error', message: e.message };
    });
    w.on('exit', () => this.onWorkerExit(w));
    this.setState('starting');
    this.send({ type: 'start', config: cfg });
  }

  private onMessage(m: FromWorker): void {
    switch (m.type) {
      case 'console':
        this.scrollback.append(m.data);
        this.events.console(m.data);
        return;
      case 'stats':
        this.history.push(m.stats);
        if (this.history.length > HISTORY_SAMPLES) this.history.shift();
        this.events.stats(m.stats);
        return;
      case 'devices':
        this.devices = m.devices;
        this.events.devices(m.devices);
        return;
      case 'state':
        if (this.state !== 'stopping') this.setState(m.state);
        return;
      case 'log':
        this.events.log(m.message);
        return;
      case 'exit':
        this.exitFromWorker = m.exit;
        return;
    }
  }

  private onWorkerExit(w: Worker): void {
    if (this.worker !== w) return;
    if (this.stopTimer) clearTimeout(this.stopTimer);
    this.stopTimer = undefined;
    this.worker = undefined;
    this.lastExit = this.exitFromWorker ?? { kind: 'killed' };
    this.devices = this.devices.map((d) => ({ ...d, state: 'off' }));
    this.setState('stopped');
  }

  /** Graceful: the run loop ends at the next slice; force (or a stuck worker) terminates it. */
  stop(force = false): void {
    const w = this.worker;
    if (!w) return;
    if (force) {
      this.exitFromWorker = { kind: 'killed' };
      void w.terminate();
      return;
    }
    this.setState('stopping');
    this.send({ type: 'stop' });
    this.stopTimer ??= setTimeout(() => {
      this.exitFromWorker = { kind: 'killed' };
      void w.terminate();
    }, STOP_GRACE_MS);
  }

  pause(): void {
    this.send({ type: 'pause' });
  }
  resume(): void {
    this.send({ type: 'resume' });
  }
  reset(): void {
    if (!this.worker) return;
    const note = new TextEncoder().encode('\r\n[wasmvisor: reset]\r\n');
    this.onMessage({ type: 'console', data: note });
    this.send({ type: 'reset' });
  }

  input(bytes: Uint8Array): void {
    this.send({ type: 'input', data: bytes });
  }

  get running(): boolean {
    return this.worker !== undefined;
  }

  deviceList(): DeviceRow[] {
    return this.devices;
  }

  statsHistory(): VmStats[] {
    return [...this.history];
  }

  /** Resolves once the worker is gone (immediately if there is none). */
  whenStopped(): Promise<void> {
    const w = this.worker;
    if (!w) return Promise.resolve();
    return new Promise((r) => w.once('exit', () => r()));
  }
}
