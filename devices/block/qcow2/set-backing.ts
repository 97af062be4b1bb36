/**
 * Pointing a qcow2 image at another backing file (or at none): the header's backing name and its
 * "backing format" extension are rewritten in place, every other extension kept as it is — the
 * one metadata change `img rebase` makes, done in a single write of the header cluster's start.
 */
import { open } from 'node:fs/promises';
import { BlockError } from '../backend.js';
import {
  EXT_BACKING_FORMAT,
  EXT_END,
  MAX_BACKING_NAME,
  parseHeader,
  putExtensions,
  Qcow2FormatError,
} from './qcow2-header.js';

export async function setBackingFile(
  path: string,
  backingFile: string | undefined,
  backingFormat: string | undefined,
): Promise<void> {
  const fail = (msg: string): never => {
    throw new BlockError('io', `disk image ${path}: ${msg}`);
  };
  const fh = await open(path, 'r+').catch((e: Error) => fail(e.message));
  try {
    const st = await fh.stat();
    const head = new Uint8Array(Math.min(st.size, 2 * 1024 * 1024));
    await fh.read(head, 0, head.length, 0);
    let h;
    try {
      h = parseHeader(head, st.size);
    } catch (e) {
      if (e instanceof Qcow2FormatError) fail(e.message);
      throw e;
    }
    if (h.version !== 3) fail('changing the backing file of a version 2 image is not supported');
    const cs = 2 ** h.clusterBits;
    const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
    // The extensions we keep, verbatim (parseHeader has checked that they fit in the cluster).
    const exts: [number, Uint8Array][] = [];
    let oldEnd = h.headerLength;
    for (let off = h.headerLength; off + 8 <= Math.min(cs, head.length);) {
      const type = dv.getUint32(off);
      const len = dv.getUint32(off + 4);
      off += 8;
      oldEnd = off;
      if (type === EXT_END) break;
      if (type !== EXT_BACKING_FORMAT) exts.push([type, head.slice(off, off + len)]);
      off += (len + 7) & ~7;
    }
    const oldName = Number(dv.getBigUint64(8));
    if (oldName) oldEnd = Math.max(oldEnd, oldName + dv.getUint32(16));
    const enc = new TextEncoder();
    if (backingFile && backingFormat) exts.unshift([EXT_BACKING_FORMAT, enc.encode(backingFormat)]);
    const name = backingFile ? enc.encode(backingFile) : undefined;
    if (name && name.length > MAX_BACKING_NAME) {
      fail(`backing file name is longer than ${MAX_BACKING_NAME} bytes`);
    }
    let end = h.headerLength;
    for (const [, d] of exts) end += 8 + ((d.length + 7) & ~7);
    end += 8;
    if (end + (name?.length ?? 0) > cs)
      fail('the new backing file name does not fit in the header');
    const out = new Uint8Array(Math.max(oldEnd, end + (name?.length ?? 0)));
    out.set(head.subarray(0, h.headerLength));
    const odv = new DataView(out.buffer);
    const off = putExtensions(out, h.headerLength, exts);
    odv.setBigUint64(8, BigInt(name ? off : 0));
    odv.setUint32(16, name?.length ?? 0);
    if (name) out.set(name, off);
    await fh.write(out, 0, out.length, 0);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}
