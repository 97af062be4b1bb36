/**
 * snapshot_blkdev through the host API, with a real VM worker and the bundled guest writing to
 * its raw disk all the while: the disk switches to an overlay without an I/O error in the guest,
 * the raw image keeps only what was written before, the VM's saved definition names the overlay
 * (so the next start has the guest's new writes), and the RPC layer refuses malformed requests.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HostApi, HostError } from '../../../main/host/host-api.js';
import { RpcSession } from '../../../main/host/rpc.js';
import type { ClientEvent } from '../../../main/host/api-types.js';
import { createQcow2 } from '../../../devices/block/qcow2/create.js';
import { Qcow2Image } from '../../../devices/block/qcow2/qcow2-image.js';
import { listSnapshots } from '../../../devices/block/qcow2/snapshots.js';

const PROMPT = /:~# /;
const MiB = 1 << 20;
let dir: string | undefined;
let host: HostApi | undefined;

afterEach(async () => {
  await host?.shutdown();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function watch(h: HostApi, name: string) {
  let text = '';
  const att = h.attachConsole(name, (b) => (text += Buffer.from(b).toString('latin1')));
  text += Buffer.from(att.scrollback).toString('latin1');
  return {
    get text() {
      return text;
    },
    async waitFor(re: RegExp, ms = 60_000): Promise<void> {
      const t0 = Date.now();
      while (!re.test(text)) {
        if (Date.now() - t0 > ms)
          throw new Error(`timeout waiting for ${re}:\n${text.slice(-600)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

const type = (h: HostApi, line: string) =>
  h.consoleInput('ov', new TextEncoder().encode(line + '\n'));

/** The 16 bytes at sector `s` of a file, as text. */
const sectorText = (file: string, s: number): string =>
  readFileSync(file)
    .subarray(s * 512, s * 512 + 16)
    .toString('latin1');

describe('diskOverlay (snapshot_blkdev) through the host API', () => {
  it('switches a raw disk the guest is writing to, and the definition follows', async () => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-hostov-'));
    const h = (host = new HostApi({ dataDir: dir }));
    const raw = join(dir, 'data.img');
    writeFileSync(raw, Buffer.alloc(16 * MiB));
    h.createVm({ name: 'ov', memMiB: 128, disks: [{ path: raw, cache: 'writethrough' }] });
    const logs: string[] = [];
    h.subscribe((e) => e.type === 'log' && e.name === 'ov' && logs.push(e.message));
    h.startVm('ov');
    const con = watch(h, 'ov');
    await con.waitFor(PROMPT);
    type(
      h,
      'echo before-switch-AAAA | dd of=/dev/vda bs=512 seek=8 conv=fsync 2>/dev/null; echo w1-$((6*7))',
    );
    await con.waitFor(/w1-42/);
    // A writer that keeps requests in flight across the switch.
    type(
      h,
      'while true; do dd if=/dev/urandom of=/dev/vda bs=64k count=8 seek=16 conv=fsync 2>/dev/null; done & echo bg-$((1+1))',
    );
    await con.waitFor(/bg-2/);
    await new Promise((r) => setTimeout(r, 300));

    const ov = join(dir, 'data-overlay.qcow2');
    const msg = await h.diskOverlay('ov', 'virtio-blk0', ov);
    expect(msg).toBe(
      `virtio-blk0: switched to ${ov} (qcow2, backing file ${raw}, raw); ${raw} is read-only from now on; the definition of "ov" now names ${ov}`,
    );
    // The saved definition (the JSON file, not only memory) names the overlay, as qcow2; the
    // definition's own settings stay.
    const saved = JSON.parse(readFileSync(join(dir, 'vms', 'ov.json'), 'utf8'));
    expect(saved.disks[0]).toMatchObject({ path: ov, format: 'qcow2', cache: 'writethrough' });
    expect(h.listVms().find((v) => v.config.name === 'ov')!.config.disks[0]!.path).toBe(ov);
    expect(logs.some((l) => l.includes(`${raw} → ${ov}`))).toBe(true);
    // The row shows the disk on the overlay with the raw image as its backing file.
    await expect
      .poll(() => h.listDevices('ov').find((d) => d.name === 'virtio-blk0')?.disk, {
        timeout: 10_000,
      })
      .toMatchObject({ format: 'qcow2', path: ov, backingChain: [raw] });

    // The writer ran across the switch; stop it, write once more, and ask the guest for errors.
    await new Promise((r) => setTimeout(r, 300));
    type(
      h,
      'kill %1; wait; echo after-switch-BBBB | dd of=/dev/vda bs=512 seek=9 conv=fsync 2>/dev/null; echo w2-$((7*7))',
    );
    await con.waitFor(/w2-49/);
    type(h, 'echo ioerr-$(dmesg | grep -ci "i/o error")-end');
    await con.waitFor(/ioerr-\d+-end/);
    expect(/ioerr-(\d+)-end/.exec(con.text)![1]).toBe('0');
    // The raw image has the write from before the switch, not the one after.
    expect(sectorText(raw, 8)).toBe('before-switch-AA');
    expect(sectorText(raw, 9)).toBe('\0'.repeat(16));

    // Refusals through the same API: one line each, the VM runs on.
    await expect(h.diskOverlay('ov', 'virtio-blk0', ov)).rejects.toThrow(
      /^virtio-blk0: cannot create .*: the file exists/,
    );
    await expect(h.diskOverlay('ov', 'virtio-blk0', 'rel.qcow2')).rejects.toThrow(HostError);
    await expect(h.diskOverlay('ov', 'virtio-blk5', join(dir, 'x.qcow2'))).rejects.toThrow(
      '"ov" has no disk virtio-blk5',
    );
    await expect(h.diskOverlay('nope', 'virtio-blk0', join(dir, 'x.qcow2'))).rejects.toThrow(
      'no VM named "nope"',
    );
    const events: ClientEvent[] = [];
    const rpc = new RpcSession(h, (e) => events.push(e));
    const answers: unknown[] = [];
    for (const params of [
      { name: 'ov', device: 'virtio-blk0' },
      { name: 'ov', device: 'virtio-blk0', file: 42 },
      { name: 'ov', device: 'virtio-blk0', file: '/tmp/a\0b' },
      { name: 'ov', device: 'virtio-blk0', file: '/x'.repeat(3000) },
      { name: 'ov', file: '/tmp/x.qcow2' },
    ]) {
      answers.push(await rpc.handle({ id: 1, method: 'diskOverlay', params }));
    }
    expect(answers.map((a) => (a as { error?: string }).error)).toEqual([
      '"file" must be a path of 1 to 4096 characters',
      '"file" must be a path of 1 to 4096 characters',
      '"file" must be a path of 1 to 4096 characters',
      '"file" must be a path of 1 to 4096 characters',
      '"device" must be a non-empty string',
    ]);
    rpc.close();
    type(h, 'echo alive-$((5*5))');
    await con.waitFor(/alive-25/);

    // The next start runs on the overlay: the guest finds what it wrote after the switch.
    h.stopVm('ov');
    await h.waitForState('ov', 'stopped');
    h.startVm('ov');
    const again = watch(h, 'ov');
    await again.waitFor(PROMPT);
    type(h, 'dd if=/dev/vda bs=512 skip=9 count=1 2>/dev/null | head -c 16; echo');
    await again.waitFor(/^after-switch-BBB\r?$/m);
    type(h, 'dd if=/dev/vda bs=512 skip=8 count=1 2>/dev/null | head -c 16; echo');
    await again.waitFor(/^before-switch-AA\r?$/m);
  }, 180_000);

  it('a disk snapshot asked for during a switch waits for it and lands in the overlay, not the base', async () => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-hostov-'));
    const h = (host = new HostApi({ dataDir: dir }));
    const base = join(dir, 'base.qcow2');
    await createQcow2(base, { size: 16 * MiB });
    h.createVm({ name: 'ov', memMiB: 128, disks: [{ path: base, format: 'qcow2' }] });
    h.startVm('ov');
    await watch(h, 'ov').waitFor(PROMPT);
    h.pauseVm('ov');
    await h.waitForState('ov', 'paused');
    const ov = join(dir, 'top.qcow2');
    // Sent together: the snapshot request reaches the worker while the switch is under way.
    const [switched, snap] = await Promise.all([
      h.diskOverlay('ov', 'virtio-blk0', ov),
      h.diskSnapshot('ov', 'virtio-blk0', 'create', 'during'),
    ]);
    expect(switched).toMatch(/switched to .*top\.qcow2/);
    expect(snap).toMatch(/snapshot \d+ "during" created/);
    h.stopVm('ov');
    await h.waitForState('ov', 'stopped');
    const names = async (file: string) => {
      const img = await Qcow2Image.open(file, { metadataOnly: true });
      try {
        return (await img.withMetadata((m) => listSnapshots(m))).map((x) => x.name);
      } finally {
        await img.close();
      }
    };
    expect(await names(ov)).toEqual(['during']);
    expect(await names(base)).toEqual([]);
  }, 120_000);
});
