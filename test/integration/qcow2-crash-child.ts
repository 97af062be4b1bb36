/**
 * Child of qcow2-crash.test.ts: writes, discards and flushes random ranges of a qcow2 image
 * through the block layer (scheduler included) until it is killed, logging on stdout what it
 * is about to do ("W offset length seed", "D offset length") and each completed flush ("F").
 * A third argument names the key file of an encrypted (LUKS) image.
 *
 * Each line is in the pipe before the operation starts: stdout to a pipe does not block in node,
 * so when the parent reads slowly (a loaded machine) lines queue in this process and die with it
 * at the SIGKILL, while the writes they announce land — the parent would then find data it was
 * never told of and report a lost flushed write that was not lost.
 */
import { openDisk } from '../../devices/block/index.js';

const [path, seedArg, keyFile] = process.argv.slice(2);
let s = Number(seedArg) >>> 0 || 1;
const rnd = (n: number) => {
  s ^= s << 13;
  s ^= s >>> 17;
  s ^= s << 5;
  return (s >>> 0) % n;
};
const SIZE = 32 << 20;
const CS = 65536;
// The parent may stop reading before the kill lands.
process.stdout.on('error', () => process.exit(0));
const log = (line: string) =>
  new Promise<void>((written) => process.stdout.write(`${line}\n`, () => written()));
const disk = await openDisk({
  path,
  format: 'qcow2',
  readOnly: false,
  cache: 'writeback',
  sched: 'noop',
  ...(keyFile ? { keyFile } : {}),
});
for (let seq = 1; ; seq++) {
  const op = rnd(20);
  if (op === 0) {
    const off = rnd(SIZE / CS - 4) * CS;
    const len = (1 + rnd(3)) * CS;
    await log(`D ${off} ${len}`);
    await disk.discard(off, len);
  } else if (op < 4) {
    await disk.flush();
    await log('F');
  } else {
    const len = (1 + rnd(64)) * 2048;
    const off = rnd((SIZE - len) / 512) * 512;
    const b = new Uint8Array(len);
    for (let i = 0; i < len; i += 512) b.fill((seq + i / 512) & 0xff, i, i + 512);
    new DataView(b.buffer).setUint32(0, seq);
    await log(`W ${off} ${len} ${seq}`);
    // Several requests in flight at once, as a guest has them.
    const half = (len / 2) & ~511;
    await Promise.all([
      disk.write(off, b.subarray(0, half)),
      disk.write(off + half, b.subarray(half)),
    ]);
  }
}
