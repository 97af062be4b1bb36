/** Reads the frames of a classic pcap file (what PcapWriter writes), for tests. */
import { readFileSync } from 'node:fs';

/** Each record's bytes, in file order; throws on a file that is not one little-endian pcap. */
export function pcapFrames(path: string): Uint8Array[] {
  const f = readFileSync(path);
  if (f.length < 24 || f.readUInt32LE(0) !== 0xa1b2c3d4) throw new Error(`${path}: not a pcap`);
  const frames: Uint8Array[] = [];
  for (let o = 24; o < f.length;) {
    const len = f.readUInt32LE(o + 8);
    if (o + 16 + len > f.length) throw new Error(`${path}: record at ${o} cut short`);
    frames.push(new Uint8Array(f.subarray(o + 16, o + 16 + len)));
    o += 16 + len;
  }
  return frames;
}
