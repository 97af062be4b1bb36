/**
 * `img create`'s encryption options, spelled as qemu-img spells them: `-f luks -o key-secret=ID`
 * or `-f qcow2 -o encrypt.format=luks,encrypt.key-secret=ID`, the secret being
 * `--object secret,id=ID,file=PATH`; `--key-file PATH` is the short form. iter-time (ms of
 * PBKDF2 per unlock, QEMU's default 2000) and the algorithms QEMU's defaults name are accepted.
 */
import type { LuksEncryptOptions } from '../../devices/block/luks/create.js';
import { LUKS_HASHES, type LuksHash } from '../../devices/block/luks/header.js';
import { parseSecretObject, readKeyFile } from '../../devices/block/luks/key-source.js';

export interface EncryptSpec {
  keyFile: string;
  iterTimeMs?: number;
  hash?: LuksHash;
}

/** The fixed choices: what QEMU creates by default, the only cipher this layer has. */
const FIXED: Record<string, string> = {
  'cipher-alg': 'aes-256',
  'cipher-mode': 'xts',
  'ivgen-alg': 'plain64',
};

/** Collects encrypt.* options (bare names too, for -f luks) from img create's -o list. */
export class EncryptOptions {
  private format?: string;
  private secret?: string;
  private iterTimeMs?: number;
  private hash?: LuksHash;

  /** Takes `k=v` if it is an encryption option of `imageFormat`; false if not one. */
  take(imageFormat: string, k: string, v: string): boolean {
    const name = k.startsWith('encrypt.') ? k.slice(8) : imageFormat === 'luks' ? k : undefined;
    if (name === undefined) return false;
    if (name === 'format') {
      if (v !== 'luks') throw new Error(`img create: encrypt.format=${v} is not supported (luks)`);
      this.format = v;
    } else if (name === 'key-secret') this.secret = v;
    else if (name === 'iter-time') {
      const ms = Number(v);
      if (!Number.isInteger(ms) || ms < 1 || ms > 60_000) {
        throw new Error(`img create: iter-time ${v} is not a whole number of ms from 1 to 60000`);
      }
      this.iterTimeMs = ms;
    } else if (name === 'hash-alg') {
      if (!(LUKS_HASHES as readonly string[]).includes(v)) {
        throw new Error(`img create: hash-alg ${v} is not supported (${LUKS_HASHES.join(', ')})`);
      }
      this.hash = v as LuksHash;
    } else if (FIXED[name] !== undefined) {
      if (v !== FIXED[name]) {
        throw new Error(`img create: ${name}=${v} is not supported (${FIXED[name]} only)`);
      }
    } else return false;
    return true;
  }

  /** The encryption asked for, with the key's file; undefined when none was. */
  resolve(imageFormat: string, objects: string[], keyFile?: string): EncryptSpec | undefined {
    const secrets = new Map(objects.map((o) => parseSecretObject(o)).map((s) => [s.id, s.file]));
    const wanted = imageFormat === 'luks' || this.format !== undefined;
    if (!wanted) {
      if (this.secret || keyFile) {
        throw new Error('img create: a key without encryption (add -o encrypt.format=luks)');
      }
      return undefined;
    }
    if (imageFormat !== 'luks' && imageFormat !== 'qcow2') {
      throw new Error(`img create: ${imageFormat} images cannot be encrypted`);
    }
    let file = keyFile;
    if (this.secret !== undefined) {
      if (file) throw new Error('img create: give the key once (--key-file or key-secret)');
      file = secrets.get(this.secret);
      if (!file) {
        throw new Error(`img create: no --object secret,id=${this.secret},file=PATH was given`);
      }
    }
    if (!file) {
      const opt = imageFormat === 'luks' ? 'key-secret' : 'encrypt.key-secret';
      throw new Error(
        `img create: an encrypted image needs a key: --key-file PATH, or -o ${opt}=ID`,
      );
    }
    return { keyFile: file, iterTimeMs: this.iterTimeMs, hash: this.hash };
  }
}

/** The options the LUKS layer takes, the key read from its file. */
export async function luksOptions(spec: EncryptSpec): Promise<LuksEncryptOptions> {
  return {
    passphrase: await readKeyFile(spec.keyFile),
    iterTimeMs: spec.iterTimeMs,
    hash: spec.hash,
  };
}
