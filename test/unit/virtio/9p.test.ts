/**
 * virtio-9p played by the mock driver: the mount tag in config space, T-messages gathered from
 * the readable buffers and R-messages scattered over the writable ones (as Linux's zero-copy
 * reads lay them out: an 11-byte header buffer, then the data pages), and hostile chains.
 */
import { afterEach, beforeEach, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forEachRingLayout, MockDriver } from './driver.js';
import { MMIO } from '../../../devices/virtio/constants.js';
import { checkMountTag, Virtio9p } from '../../../devices/virtio/9p/device.js';

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wv-9p-dev-'));
  writeFileSync(join(dir, 'f'), 'abcdefghijklmnopqrstuvwxyz');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A T-message: size[4] type[1] tag[2] body. */
function msg(type: number, tag: number, body: number[]): Uint8Array {
  const m = new Uint8Array(7 + body.length);
  const dv = new DataView(m.buffer);
  dv.setUint32(0, m.length, true);
  m[4] = type;
  dv.setUint16(5, tag, true);
  m.set(body, 7);
  return m;
}
const u32 = (v: number) => [v & 255, (v >>> 8) & 255, (v >>> 16) & 255, v >>> 24];
const u64 = (v: number) => [...u32(v), 0, 0, 0, 0];
const str = (s: string) => {
  const b = [...new TextEncoder().encode(s)];
  return [b.length & 255, b.length >>> 8, ...b];
};
const NOFID = 0xffffffff;

forEachRingLayout('virtio-9p', () => {
  it('offers MOUNT_TAG and shows the tag in config space', () => {
    const d = new MockDriver(new Virtio9p({ root: dir, tag: 'src' })).init();
    expect(d.offeredFeatures() & 1n).toBe(1n);
    const cfg = [0, 1, 2, 3, 4].map((i) => d.transport.read(MMIO.config + i, 1));
    expect(cfg).toEqual([3, 0, 's'.charCodeAt(0), 'r'.charCodeAt(0), 'c'.charCodeAt(0)]);
  });

  it('answers a session: version, attach, walk, open, read scattered as Linux lays it out', () => {
    const dev = new Virtio9p({ root: dir, tag: 'src' });
    const d = new MockDriver(dev).init();
    const q = d.queues[0];
    const call = (t: Uint8Array, writable: number[]): Uint8Array[] => {
      const a = d.mem.put(t);
      const outs = writable.map((n) => d.mem.alloc(n));
      const id = q.add([
        { addr: a, len: t.length },
        ...outs.map((o, i) => ({ addr: o, len: writable[i]!, write: true })),
      ]);
      d.kick();
      const used = q.takeUsed();
      expect(used.map((u) => u.id)).toEqual([id]);
      let left = used[0]!.len;
      return outs.map((o, i) => {
        const n = Math.min(left, writable[i]!);
        left -= n;
        return d.mem.read(o, n);
      });
    };
    const [ver] = call(msg(100, 0xffff, [...u32(8192), ...str('9P2000.L')]), [64]);
    expect(ver![4]).toBe(101); // Rversion
    const [att] = call(
      msg(104, 1, [...u32(1), ...u32(NOFID), ...str('root'), ...str(''), ...u32(0)]),
      [64],
    );
    expect(att![4]).toBe(105);
    expect(dev.inUse).toBe(true);
    const [walk] = call(msg(110, 2, [...u32(1), ...u32(2), 1, 0, ...str('f')]), [64]);
    expect(walk![4]).toBe(111);
    const [open] = call(msg(12, 3, [...u32(2), ...u32(0)]), [64]);
    expect(open![4]).toBe(13);
    // Tread of 26 bytes into an 11-byte header buffer and a data buffer.
    const [hdr, data] = call(msg(116, 4, [...u32(2), ...u64(0), ...u32(26)]), [11, 4096]);
    expect(hdr![4]).toBe(117);
    expect(new DataView(hdr!.buffer, hdr!.byteOffset).getUint32(7, true)).toBe(26);
    expect(new TextDecoder().decode(data)).toBe('abcdefghijklmnopqrstuvwxyz');
    expect(dev.metrics.requests).toBe(5);
    // Restoring a saved state (taken with nothing mounted) drops the fids of the guest it replaces.
    dev.restoreState(dev.saveState());
    expect(dev.inUse).toBe(false);
    call(msg(104, 5, [...u32(1), ...u32(NOFID), ...str('root'), ...str(''), ...u32(0)]), [64]);
    expect(dev.inUse).toBe(true);
    // A device reset forgets the fids (the guest's mount is gone with its driver).
    d.w(MMIO.status, 0);
    expect(dev.inUse).toBe(false);
  });

  it('hostile chains: no readable request, or one larger than any msize, come back empty', () => {
    const dev = new Virtio9p({ root: dir, tag: 'src' });
    const d = new MockDriver(dev).init();
    const q = d.queues[0];
    const out = d.mem.alloc(64);
    q.add([{ addr: out, len: 64, write: true }]);
    const big = d.mem.alloc(1 << 20);
    q.add([
      { addr: big, len: 1 << 20 },
      { addr: out, len: 64, write: true },
    ]);
    const tiny = d.mem.put(new Uint8Array([1, 2, 3]));
    q.add([
      { addr: tiny, len: 3 },
      { addr: out, len: 64, write: true },
    ]);
    d.kick();
    expect(q.takeUsed().map((u) => u.len)).toEqual([0, 0, 0]);
    expect(dev.metrics.bad_requests).toBe(3);
    expect(d.needsReset).toBe(false);
  });
});

it('refuses tags Linux cannot mount and folders that are not there', () => {
  expect(checkMountTag('')).toMatch(/empty/);
  expect(checkMountTag('x'.repeat(32))).toMatch(/longer/);
  expect(checkMountTag('a b')).toMatch(/space/);
  expect(checkMountTag('host0')).toBeUndefined();
  expect(() => new Virtio9p({ root: join(dir, 'missing'), tag: 'x' })).toThrow(/missing/);
});
