/**
 * The live stats carry each disk's I/O and each network card's traffic with the exits to it and
 * the interrupts it raised (the device panel's I/O lines, the monitor's info blockstats), taken
 * from the machine's counters: an e1000's exits on both its BARs and its own interrupt count, a
 * virtio-net's on its slot and its transport's interrupts.
 */
import { describe, it, expect } from 'vitest';
import { StatsSampler } from '../../../main/worker/stats-sampler.js';
import type { MachineStats } from '../../../main/vm/machine.js';
import { nicIoText, diskIoText } from '../../../renderer/src/devices-view.js';

const port = (tx: number, rx: number) => ({
  net_tx_frames: tx / 1024,
  net_tx_bytes: tx,
  net_rx_frames: rx / 512,
  net_rx_bytes: rx,
  net_rx_dropped: 2,
  net_tx_link_down: 1,
});

const machine: MachineStats = {
  instret: 1n,
  seconds: 1,
  mips: 0,
  exits: {
    'e1000-0': { reads: 300, writes: 500 },
    'e1000-0.io': { reads: 0, writes: 4 },
    'virtio-net0': { reads: 10, writes: 40 },
    uart0: { reads: 7, writes: 7 },
  },
  harts: { cpus: [], switches: 0 },
  interrupts: {},
  traps: 0n,
  virtio: { 'virtio-net0': { interrupts: 9, queue_notifies: 40 } },
  nics: {
    'e1000-0': { ...port(4 << 20, 1 << 20), interrupts: 120 },
    'virtio-net0': port(4 << 20, 1 << 20),
  },
};

describe('stats sampler: device I/O', () => {
  it("a NIC's traffic, exits on all its regions and its interrupts; nothing for a VM without", () => {
    const s = new StatsSampler(
      64,
      () => 0,
      () => undefined,
    ).sample(machine, 0);
    expect(s.nics).toEqual({
      'e1000-0': {
        txFrames: 4096,
        txBytes: 4 << 20,
        rxFrames: 2048,
        rxBytes: 1 << 20,
        exits: 804,
        interrupts: 120,
        dropped: 3,
      },
      'virtio-net0': {
        txFrames: 4096,
        txBytes: 4 << 20,
        rxFrames: 2048,
        rxBytes: 1 << 20,
        exits: 50,
        interrupts: 9,
        dropped: 3,
      },
    });
    const bare = { ...machine, nics: {} };
    expect(
      new StatsSampler(
        64,
        () => 0,
        () => undefined,
      ).sample(bare, 0).nics,
    ).toBeUndefined();
    // Per MiB once a MiB has moved: 5 MiB here.
    expect(nicIoText(s.nics!['e1000-0']!)).toBe(
      'tx 4 MiB (4,096 frames) · rx 1 MiB (2,048 frames) · 804 exits, 120 interrupts · ' +
        'per MiB 161 exits, 24 interrupts · 3 frames dropped',
    );
    expect(nicIoText({ ...s.nics!['virtio-net0']!, dropped: 0 })).toBe(
      'tx 4 MiB (4,096 frames) · rx 1 MiB (2,048 frames) · 50 exits, 9 interrupts · ' +
        'per MiB 10 exits, 1.8 interrupts',
    );
  });

  it("a disk's line: requests, bytes, host reads at once, latency, queue depth", () => {
    expect(
      diskIoText({
        policy: 'noop',
        cache: 'writeback',
        reads: 100,
        writes: 3,
        flushes: 1,
        discards: 0,
        bytesRead: 400 * 1024,
        bytesWritten: 12 * 1024,
        merges: 0,
        backendCalls: 103,
        readsAtOnce: 75,
        readsQueued: 25,
        queueDepth: 0,
        maxQueueDepth: 4,
        latencyUs: { p50: 150, p99: 2400, max: 3000 },
        errors: 0,
      }),
    ).toBe(
      '100 reads (400 KiB) · 3 writes (12 KiB) · 1 flushes · 100 host reads, 75% at once from the ' +
        'page cache · latency p50 150 µs, p99 2.4 ms · queue depth ≤ 4',
    );
  });
});
