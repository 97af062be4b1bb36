/**
 * Packet capture to a classic pcap file (LINKTYPE_ETHERNET, microsecond timestamps), which
 * tshark and Wireshark read. Records are appended to a write stream synchronously, in the order
 * the NIC saw them, so starting or stopping a capture never loses or reorders a frame: stop()
 * ends the stream after everything written before it. If the disk cannot keep up, frames beyond
 * a bounded backlog are dropped and counted rather than held in memory without limit.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { open as openFile } from 'node:fs/promises';

const PCAP_MAGIC = 0xa1b2c3d4;
const LINKTYPE_ETHERNET = 1;
/** Large enough for any frame (NetPort records large segments cut, but a frame may be up to 64 KiB). */
const SNAPLEN = 262_144;
/** Bytes queued in the stream before frames are dropped. */
const MAX_BACKLOG = 16 * 1024 * 1024;

export interface CaptureStats {
  frames: number;
  bytes: number;
  dropped: number;
}

export class PcapWriter {
  readonly stats: CaptureStats = { frames: 0, bytes: 0, dropped: 0 };
  private readonly out: WriteStream;
  private error: Error | undefined;
  private readonly opened: Promise<void>;
  /** Wall-clock microseconds at performance.now() = 0: monotonic timestamps with µs detail. */
  private readonly originUs = Date.now() * 1000 - performance.now() * 1000;

  private constructor(
    readonly path: string,
    append = false,
  ) {
    this.out = createWriteStream(path, { flags: append ? 'a' : 'w' });
    this.opened = new Promise((resolve, reject) => {
      this.out.once('open', () => resolve());
      this.out.once('error', (e) => {
        this.error = e;
        reject(e);
      });
    });
    this.opened.catch(() => {});
    if (!append) this.out.write(PcapWriter.header());
  }

  /**
   * Opens `path` for writing (truncates). Rejects with the fs error if it cannot be created.
   * `append`: a file that already starts with the header this writer writes gets the new
   * frames after its own (a resumed VM goes on with its capture); any other file is truncated.
   */
  static async open(path: string, o: { append?: boolean } = {}): Promise<PcapWriter> {
    const w = new PcapWriter(path, o.append === true && (await hasOurHeader(path)));
    await w.opened;
    return w;
  }

  /** The 24-byte file header this writer starts a file with. */
  static header(): Buffer {
    const h = Buffer.alloc(24);
    h.writeUInt32LE(PCAP_MAGIC, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeUInt32LE(SNAPLEN, 16);
    h.writeUInt32LE(LINKTYPE_ETHERNET, 20);
    return h;
  }

  /** Appends one frame with the current wall-clock time. */
  write(frame: Uint8Array): void {
    if (this.error || this.out.writableLength > MAX_BACKLOG) {
      this.stats.dropped++;
      return;
    }
    const len = Math.min(frame.length, SNAPLEN);
    const now = Math.floor(this.originUs + performance.now() * 1000);
    const h = Buffer.alloc(16);
    h.writeUInt32LE(Math.floor(now / 1e6), 0);
    h.writeUInt32LE(now % 1e6, 4);
    h.writeUInt32LE(len, 8);
    h.writeUInt32LE(frame.length, 12);
    // The frame belongs to the packet and is never written again, so no copy is needed.
    this.out.write(h);
    this.out.write(frame.subarray(0, len));
    this.stats.frames++;
    this.stats.bytes += len;
  }

  /** Flushes every frame written so far and closes the file. */
  close(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.error) return reject(this.error);
      this.out.end(() => (this.error ? reject(this.error) : resolve()));
    });
  }
}

/** True when `path` exists and begins with exactly the header PcapWriter writes. */
async function hasOurHeader(path: string): Promise<boolean> {
  try {
    const fh = await openFile(path, 'r');
    try {
      const b = Buffer.alloc(24);
      const { bytesRead } = await fh.read(b, 0, 24, 0);
      return bytesRead === 24 && b.equals(PcapWriter.header());
    } finally {
      await fh.close();
    }
  } catch {
    return false;
  }
}
