/**
 * virtio-console (virtio 1.2 §5.3) with one port and no multiport: Linux makes it /dev/hvc0,
 * usable as the system console (`console=hvc0`). Queue 0 (receiveq) carries host→guest bytes
 * into buffers the driver posts; queue 1 (transmitq) carries guest output.
 */
import { ByteQueue } from '../../platform/byte-queue.js';
import { DEVICE_ID } from '../constants.js';
import type { VirtioContext, VirtioDevice } from '../device.js';

export interface VirtioConsoleState {
  version: 1;
  /** Input the guest has not taken yet. */
  pendingInput: number[];
}

export interface VirtioConsoleMetrics {
  [name: string]: number;
  /** Bytes the guest wrote (transmitq). */
  tx_bytes: number;
  /** Bytes delivered to the guest (receiveq). */
  rx_bytes: number;
  /** Chains used on each queue. */
  tx_requests: number;
  rx_requests: number;
  /** Input bytes dropped because the guest did not read them and the buffer was full. */
  rx_dropped: number;
}

const RX = 0;
const TX = 1;
/** Host-side input buffered while the guest has no receive buffer posted. */
const INPUT_BUFFER = 64 * 1024;

export class VirtioConsole implements VirtioDevice {
  readonly deviceId = DEVICE_ID.console;
  readonly features = 0n;
  readonly queueMaxSizes: readonly number[] = [64, 64];
  readonly metrics: VirtioConsoleMetrics = {
    tx_bytes: 0,
    rx_bytes: 0,
    tx_requests: 0,
    rx_requests: 0,
    rx_dropped: 0,
  };
  onConfigChange?: () => void;
  /** Guest output (bytes copied out of guest RAM). */
  onOutput: ((bytes: Uint8Array) => void) | undefined;

  private ctx: VirtioContext | undefined;
  private readonly pending = new ByteQueue(INPUT_BUFFER);

  constructor(readonly name = 'virtio-console0') {}

  /** No F_SIZE / MULTIPORT: the config space (cols, rows, max_nr_ports, emerg_wr) reads 0. */
  readConfig(): number {
    return 0;
  }
  writeConfig(): void {}

  activate(ctx: VirtioContext): void {
    this.ctx = ctx;
  }

  /** Keyboard input; returns how many bytes were accepted (the rest did not fit). */
  input(bytes: Uint8Array): number {
    let n = 0;
    for (const b of bytes) {
      if (!this.pending.push(b)) break;
      n++;
    }
    this.metrics.rx_dropped += bytes.length - n;
    this.deliver();
    return n;
  }

  notify(queue: number): void {
    if (queue === RX) this.deliver();
    else if (queue === TX) this.transmit();
  }

  /** Moves pending input into the receive buffers the driver posted. */
  private deliver(): void {
    const ctx = this.ctx;
    if (!ctx || this.pending.length === 0) return;
    const q = ctx.queues[RX];
    let used = 0;
    while (this.pending.length) {
      const c = q.pop();
      if (!c) break;
      let n = 0;
      for (const s of c.segments) {
        if (!s.writable) continue;
        const v = s.view;
        let i = 0;
        while (i < v.length && this.pending.length) v[i++] = this.pending.shift();
        n += i;
        if (!this.pending.length) break;
      }
      q.push(c.head, n);
      this.metrics.rx_bytes += n;
      this.metrics.rx_requests++;
      used++;
    }
    if (used) ctx.signalUsed(q);
  }

  private transmit(): void {
    const ctx = this.ctx;
    if (!ctx) return;
    const q = ctx.queues[TX];
    let used = 0;
    for (let c = q.pop(); c; c = q.pop()) {
      for (const s of c.segments) {
        if (s.writable) continue;
        // A copy: the buffer returns to the guest before the terminal has written it.
        this.onOutput?.(s.view.slice());
        this.metrics.tx_bytes += s.view.length;
      }
      q.push(c.head, 0);
      this.metrics.tx_requests++;
      used++;
    }
    if (used) ctx.signalUsed(q);
  }

  reset(): void {
    this.ctx = undefined;
  }

  saveState(): VirtioConsoleState {
    return { version: 1, pendingInput: this.pending.toArray() };
  }

  restoreState(s: unknown): void {
    const st = s as VirtioConsoleState;
    if (st?.version !== 1) throw new Error(`${this.name}: unsupported state`);
    this.pending.clear();
    for (const b of st.pendingInput) this.pending.push(b & 0xff);
  }
}
