/**
 * The block back-end contract: what a disk format (raw today; qcow2 and overlays later) offers
 * to the layers above it (the I/O scheduler, then virtio-blk). Every call is asynchronous — the
 * vCPU never waits on host I/O — and offsets/lengths are in bytes, multiples of 512.
 */
export interface BlockBackend {
  /** Human-readable identity for logs and errors (usually the file path). */
  readonly name: string;
  /** Capacity in bytes (a multiple of 512). */
  readonly size: number;
  readonly readOnly: boolean;
  /** Reads `buf.length` bytes at `offset` into `buf` (which may be a view of guest RAM). */
  read(offset: number, buf: Uint8Array): Promise<void>;
  /** Writes `buf` at `offset`. Rejects with BlockError('read-only') on a read-only disk. */
  write(offset: number, buf: Uint8Array): Promise<void>;
  /** Makes every completed write durable (per the cache mode). */
  flush(): Promise<void>;
  /** Deallocates a range (reads back as zeros where the format/host can punch holes). */
  discard(offset: number, length: number): Promise<void>;
  /** Writes zeros over a range, deallocating if `unmap` and possible. */
  writeZeroes(offset: number, length: number, unmap: boolean): Promise<void>;
  close(): Promise<void>;
}

export type BlockErrorKind = 'read-only' | 'out-of-range' | 'io' | 'unsupported';

export class BlockError extends Error {
  constructor(
    readonly kind: BlockErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Optional scatter/gather I/O: one host call for several buffers at consecutive offsets
 * (`bufs[0]` at `offset`, `bufs[1]` right after it, …). The I/O scheduler uses it to merge
 * adjacent requests into one back-end call without copying guest memory.
 */
export interface VectoredBlockBackend extends BlockBackend {
  readv(offset: number, bufs: readonly Uint8Array[]): Promise<void>;
  writev(offset: number, bufs: readonly Uint8Array[]): Promise<void>;
}

export function isVectored(b: BlockBackend): b is VectoredBlockBackend {
  const v = b as Partial<VectoredBlockBackend>;
  return typeof v.readv === 'function' && typeof v.writev === 'function';
}

/**
 * A format's data cipher (LUKS's AES-XTS): works on whole 512-byte sectors, each with its own
 * IV from its sector number. Views hold consecutive bytes starting at sector `sector`.
 */
export interface SectorCipher {
  /** Decrypts in place. */
  decrypt(sector: number, views: readonly Uint8Array[]): void;
  /** The encrypted bytes, in a new buffer: the views (guest RAM) are left as they are. */
  encrypt(sector: number, views: readonly Uint8Array[]): Uint8Array;
}
