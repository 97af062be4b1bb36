/**
 * Opening an image of any format this layer knows, and backing chains: the format is probed by
 * magic only where nobody named it (QEMU's rule: a file the user called raw is raw, whatever its
 * first bytes claim, or a guest could write a qcow2 header into its raw disk and make the host
 * open a file of its choosing as "backing"). Relative backing names resolve against the
 * directory of the image that names them, as QEMU does; a loop or a missing file is an error
 * naming the image and the file.
 */
import { realpath } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { CacheMode } from '../../../main/vm/config.js';
import { BlockError, type BlockBackend } from '../backend.js';
import { RawFile } from '../raw-file.js';
import { isLuksMagic } from '../luks/header.js';
import { LuksLayer, unlockLuks } from '../luks/luks-layer.js';
import { QCOW2_MAGIC } from './qcow2-header.js';
import { Qcow2Image } from './qcow2-image.js';

export type ImageFormat = 'raw' | 'qcow2' | 'luks';

export interface OpenImageOptions {
  readOnly?: boolean;
  cache?: CacheMode;
  l2CacheBytes?: number;
  /** Copy-on-read into this image (qcow2 with a backing file; ignored for others). */
  copyOnRead?: boolean;
  log?: (msg: string) => void;
  /** The passphrase of an encrypted image (LUKS, or qcow2 with encrypt.format=luks). */
  key?: Uint8Array;
  /** The passphrase of the backing file (a snapshot=on overlay over an encrypted image). */
  backingKey?: Uint8Array;
  /**
   * false: no image locks on this image or its backing chain (QEMU's force-share) — for a
   * read-only opening whose caller holds the locks that matter (img commit writes the base).
   */
  lock?: boolean;
}

/** The error for an encrypted image opened without its key. */
function needKey(path: string): never {
  throw new BlockError(
    'io',
    `disk image ${path} is encrypted (LUKS): give its key (key-file=PATH)`,
  );
}

/** Reads the first bytes and says whether they are a qcow2 or LUKS header (else raw). */
export async function probeFormat(path: string): Promise<ImageFormat> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new BlockError(
      'io',
      `disk image ${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
    );
  }
  try {
    const b = Buffer.alloc(6);
    const { bytesRead } = await fh.read(b, 0, 6, 0);
    if (bytesRead >= 4 && b.readUInt32BE(0) === QCOW2_MAGIC) return 'qcow2';
    return bytesRead === 6 && isLuksMagic(b) ? 'luks' : 'raw';
  } finally {
    await fh.close();
  }
}

/** The path a backing name in `image` refers to. */
export function resolveBacking(image: string, backing: string): string {
  return isAbsolute(backing) ? backing : resolve(dirname(image), backing);
}

export async function openImage(
  path: string,
  format: ImageFormat | undefined,
  opts: OpenImageOptions = {},
  chain: string[] = [],
): Promise<BlockBackend> {
  let real: string;
  try {
    real = await realpath(path);
  } catch {
    const by = chain.length > 0 ? ` (backing file of ${chain[chain.length - 1]})` : '';
    throw new BlockError('io', `disk image ${path}${by}: no such file`);
  }
  if (chain.includes(real)) {
    throw new BlockError(
      'io',
      `disk image ${chain[chain.length - 1]}: backing chain loops back to ${path}`,
    );
  }
  const fmt = format ?? (await probeFormat(path));
  const key = opts.key;
  if (fmt === 'raw' || fmt === 'luks') {
    const raw = await RawFile.open(path, {
      readOnly: opts.readOnly,
      cache: opts.cache,
      log: opts.log,
      lock: opts.lock,
    });
    if (fmt === 'raw') return raw;
    if (!key) {
      await raw.close();
      needKey(path);
    }
    return LuksLayer.open(raw, key);
  }
  const next = [...chain, real];
  return Qcow2Image.open(path, {
    readOnly: opts.readOnly,
    cache: opts.cache,
    l2CacheBytes: opts.l2CacheBytes,
    copyOnRead: opts.copyOnRead,
    log: opts.log,
    lock: opts.lock,
    unlock: (read, regionBytes) => {
      if (!key) needKey(path);
      return unlockLuks(path, read, regionBytes, key).then((u) => u.cipher);
    },
    openBacking: (name, bfmt) => {
      if (bfmt !== undefined && bfmt !== 'raw' && bfmt !== 'qcow2' && bfmt !== 'luks') {
        throw new BlockError(
          'unsupported',
          `disk image ${path}: backing file ${name} has format "${bfmt}", which is not supported`,
        );
      }
      const p = resolveBacking(path, name);
      const bopts = {
        ...opts,
        readOnly: true,
        copyOnRead: false,
        key: opts.backingKey,
        backingKey: undefined,
      };
      return openImage(p, bfmt, bopts, next).catch((e: unknown) => {
        const msg = (e as Error).message;
        if (msg.includes(`backing file of`) || msg.includes('backing chain')) throw e;
        throw new BlockError('io', `disk image ${path}: backing file ${name}: ${msg}`);
      });
    },
  });
}
