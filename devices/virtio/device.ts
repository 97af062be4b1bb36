/**
 * The contract between a virtio transport (virtio-mmio today, PCI later) and a device model
 * (blk, console, rng). The transport owns registers, feature negotiation, status and queue
 * configuration; the device owns its config space, its queues' meaning and its back end.
 */
import type { Virtqueue } from './queue.js';

/** What the transport gives a device when the driver sets DRIVER_OK. */
export interface VirtioContext {
  readonly queues: readonly Virtqueue[];
  /** The features the driver accepted. */
  readonly features: bigint;
  /**
   * Publishes the chains pushed on `queue` and injects a used-buffer interrupt if the driver
   * wants one. Call once per batch of completions.
   */
  signalUsed(queue: Virtqueue): void;
  /** The guest broke the protocol: NEEDS_RESET, counted, logged. The device stops. */
  fail(why: string): void;
}

export interface VirtioDevice {
  /** Name in stats and logs ("virtio-blk0"). */
  readonly name: string;
  readonly deviceId: number;
  /** Device-specific feature bits offered; the transport adds VERSION_1, EVENT_IDX, INDIRECT. */
  readonly features: bigint;
  /** QueueNumMax of each queue. */
  readonly queueMaxSizes: readonly number[];
  /** Device configuration space, little-endian as the guest reads it. */
  readConfig(offset: number, size: number): number;
  writeConfig(offset: number, size: number, value: number): void;
  /** DRIVER_OK: the device may use its queues. */
  activate(ctx: VirtioContext): void;
  /** The driver notified `queue` (QueueNotify), or DRIVER_OK found it ready. */
  notify(queue: number): void;
  /** Device reset (status 0 or system reset): forget queued work; late completions are dropped. */
  reset(): void;
  /** Named counters (Firecracker-style), mutated in place. */
  readonly metrics: Record<string, number>;
  saveState(): unknown;
  restoreState(s: unknown): void;
  /** Tells the transport its config space changed (config generation + interrupt). */
  onConfigChange?: () => void;
}

/** Reads `size` bytes little-endian at `offset` of a config-space image; 0 beyond its end. */
export function readLE(bytes: Uint8Array, offset: number, size: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) {
    const o = offset + i;
    v = v * 256 + (o >= 0 && o < bytes.length ? bytes[o] : 0);
  }
  return v >>> 0;
}
