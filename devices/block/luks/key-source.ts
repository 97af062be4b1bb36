/**
 * Where an encrypted image's passphrase comes from: a file (its bytes exactly, as QEMU's
 * `secret` object with `file=` and cryptsetup's --key-file read it), or a prompt on the terminal
 * without echo. Never from the command line itself — every user of the host can read a process's
 * arguments — and never into a log: errors name the file, not its contents.
 */
import { readFile, stat } from 'node:fs/promises';

/** Longer key files are refused (cryptsetup's default limit is 8 MiB; a passphrase is short). */
export const MAX_KEY_FILE_BYTES = 64 * 1024;

export class KeySourceError extends Error {}

/** The passphrase in `path`: all its bytes, trailing newline included (as QEMU reads it). */
export async function readKeyFile(path: string): Promise<Uint8Array> {
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new KeySourceError(`key file ${path} is not a regular file`);
    size = st.size;
  } catch (e) {
    if (e instanceof KeySourceError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new KeySourceError(
      `key file ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`,
    );
  }
  if (size === 0) throw new KeySourceError(`key file ${path} is empty`);
  if (size > MAX_KEY_FILE_BYTES) {
    throw new KeySourceError(`key file ${path} is larger than ${MAX_KEY_FILE_BYTES} bytes`);
  }
  return new Uint8Array(await readFile(path));
}

/** QEMU's `--object secret,id=ID,file=PATH`: the id and the file (a literal `data=` is refused). */
export interface SecretObject {
  id: string;
  file: string;
}

export function parseSecretObject(spec: string): SecretObject {
  const [kind, ...kvs] = spec.split(',');
  if (kind !== 'secret') {
    throw new KeySourceError(`--object ${kind}: only secret objects are supported`);
  }
  let id: string | undefined;
  let file: string | undefined;
  for (const kv of kvs) {
    const [k, v] = kv.split('=', 2) as [string, string | undefined];
    if (k === 'id' && v) id = v;
    else if (k === 'file' && v) file = v;
    else if (k === 'format' && v === 'raw') continue;
    else if (k === 'data') {
      throw new KeySourceError(
        '--object secret: a key given as data= would be visible to every user of this host; put it in a file (file=PATH)',
      );
    } else throw new KeySourceError(`--object secret: option "${kv}" is not supported`);
  }
  if (!id || !file) throw new KeySourceError('--object secret: needs id=ID and file=PATH');
  return { id, file };
}

/** What promptPassphrase needs of a terminal (process.stdin / process.stderr). */
export interface PromptTerminal {
  input: NodeJS.ReadStream;
  output: NodeJS.WritableStream;
}

/**
 * Asks for a passphrase on a terminal without echoing it; resolves at Enter (the newline is not
 * part of it), rejects on Ctrl-C or Ctrl-D before any input.
 */
export function promptPassphrase(
  question: string,
  t: PromptTerminal = { input: process.stdin, output: process.stderr },
): Promise<Uint8Array> {
  const { input, output } = t;
  if (!input.isTTY) return Promise.reject(new KeySourceError('no terminal to ask for the key on'));
  output.write(question);
  input.setRawMode(true);
  input.resume();
  const typed: number[] = [];
  return new Promise<Uint8Array>((resolve, reject) => {
    const done = (err?: Error) => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      output.write('\n');
      if (err) reject(err);
      else resolve(Uint8Array.from(typed));
      typed.fill(0);
    };
    const onData = (chunk: Buffer) => {
      for (const c of chunk) {
        if (c === 0x0d || c === 0x0a) return done();
        if (c === 0x03 || (c === 0x04 && typed.length === 0)) {
          return done(new KeySourceError('no key given'));
        }
        if (c === 0x7f || c === 0x08) typed.pop();
        else if (c === 0x15) typed.length = 0;
        else typed.push(c);
      }
    };
    input.on('data', onData);
  });
}
