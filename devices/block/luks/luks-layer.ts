/**
 * Encryption as a layer between a format and its file. `unlockLuks` reads a LUKS1 header from
 * whatever region holds it (a raw LUKS file's start, or the clusters a qcow2 header extension
 * names) and turns a passphrase into the data cipher; `LuksLayer` is a raw LUKS image: the
 * guest's sector s is the file's sector payloadOffset + s, encrypted with IV s (QEMU numbers
 * sectors from the payload's start).
 *
 * Discard passes down (discarded sectors then read as noise, as in QEMU); write-zeroes writes
 * encrypted zeros, since zeros on the file are not zeros in the clear.
 */
import type { CacheMode } from '../../../main/vm/config.js';
import { BlockError, type SectorCipher, type VectoredBlockBackend } from '../backend.js';
import { admitRequest, hostIoError, totalLength } from '../request-check.js';
import {
  LUKS_SECTOR,
  LuksFormatError,
  PHDR_BYTES,
  parseLuksHeader,
  type LuksHeader,
} from './header.js';
import { unlockMasterKey, type RegionReader } from './keyslots.js';
import { XtsPlain64 } from './xts-cipher.js';

export interface UnlockedLuks {
  header: LuksHeader;
  cipher: SectorCipher;
  slot: number;
}

/**
 * Parses the header in a region of `regionBytes` and opens it with `passphrase`. Errors are
 * BlockErrors naming the image: a malformed header, or "wrong passphrase … no key slot opened".
 */
export async function unlockLuks(
  name: string,
  read: RegionReader,
  regionBytes: number,
  passphrase: Uint8Array,
): Promise<UnlockedLuks> {
  let header: LuksHeader;
  try {
    header = parseLuksHeader(
      await read(0, Math.ceil(PHDR_BYTES / LUKS_SECTOR) * LUKS_SECTOR),
      regionBytes,
    );
  } catch (e) {
    if (e instanceof LuksFormatError)
      throw new BlockError('io', `disk image ${name}: LUKS: ${e.message}`);
    throw e;
  }
  if (!header.slots.some((s) => s.active)) {
    throw new BlockError('io', `disk image ${name}: LUKS: no key slot is active`);
  }
  const u = await unlockMasterKey(header, read, passphrase);
  if (!u) throw new BlockError('io', `wrong passphrase for ${name}: no key slot opened`);
  return { header, cipher: new XtsPlain64(u.masterKey), slot: u.slot };
}

/** What the layer needs of the file below it: a vectored back end whose cache mode can change. */
export interface LuksFile extends VectoredBlockBackend {
  setCacheMode(mode: CacheMode): void;
}

const ZERO_CHUNK = 1 << 20;

export class LuksLayer implements VectoredBlockBackend {
  readonly size: number;
  private readonly payload: number;
  private closed = false;

  private constructor(
    private readonly file: LuksFile,
    readonly luks: UnlockedLuks,
  ) {
    this.payload = luks.header.payloadOffset * LUKS_SECTOR;
    this.size = file.size - this.payload;
  }

  /** Opens the raw LUKS image on `file` (which this layer then owns and closes). */
  static async open(file: LuksFile, passphrase: Uint8Array): Promise<LuksLayer> {
    try {
      const read: RegionReader = async (off, len) => {
        if (off + len > file.size) {
          throw new BlockError('io', `disk image ${file.name}: LUKS: the header is cut short`);
        }
        const b = new Uint8Array(len);
        await file.read(off, b);
        return b;
      };
      const luks = await unlockLuks(file.name, read, file.size, passphrase);
      if (luks.header.payloadOffset * LUKS_SECTOR > file.size) {
        throw new BlockError(
          'io',
          `disk image ${file.name}: LUKS: the payload starts past the end of the file`,
        );
      }
      return new LuksLayer(file, luks);
    } catch (e) {
      await file.close().catch(() => {});
      throw e;
    }
  }

  get name(): string {
    return this.file.name;
  }
  get readOnly(): boolean {
    return this.file.readOnly;
  }

  setCacheMode(mode: CacheMode): void {
    this.file.setCacheMode(mode);
  }

  read(offset: number, buf: Uint8Array): Promise<void> {
    return this.readv(offset, [buf]);
  }

  write(offset: number, buf: Uint8Array): Promise<void> {
    return this.writev(offset, [buf]);
  }

  async readv(offset: number, bufs: readonly Uint8Array[]): Promise<void> {
    const len = totalLength(bufs);
    admitRequest(this, this.closed, 'read', offset, len, false);
    await this.file.readv(this.payload + offset, bufs);
    this.decrypt('read', offset, len, () => this.luks.cipher.decrypt(offset / LUKS_SECTOR, bufs));
  }

  async writev(offset: number, bufs: readonly Uint8Array[]): Promise<void> {
    const len = totalLength(bufs);
    admitRequest(this, this.closed, 'write', offset, len, true);
    const enc = this.decrypt('write', offset, len, () =>
      this.luks.cipher.encrypt(offset / LUKS_SECTOR, bufs),
    );
    await this.file.write(this.payload + offset, enc);
  }

  flush(): Promise<void> {
    return this.file.flush();
  }

  discard(offset: number, length: number): Promise<void> {
    admitRequest(this, this.closed, 'discard', offset, length, true);
    return this.file.discard(this.payload + offset, length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    admitRequest(this, this.closed, 'write-zeroes', offset, length, true);
    for (let done = 0; done < length;) {
      const n = Math.min(ZERO_CHUNK, length - done);
      await this.writev(offset + done, [new Uint8Array(n)]);
      done += n;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.file.close();
  }

  /** Runs a cipher step, reporting a failure as the request's I/O error. */
  private decrypt<T>(what: string, offset: number, len: number, f: () => T): T {
    try {
      return f();
    } catch (e) {
      throw hostIoError(this.name, what, offset, len, e, 'encryption: ');
    }
  }
}
