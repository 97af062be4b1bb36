/**
 * The per-user directory where a host process finds the others of the same user (the switch
 * sockets of switch-socket.ts): `$XDG_RUNTIME_DIR/wasmvisor`, or without XDG_RUNTIME_DIR
 * `<OS temp dir>/wasmvisor-<uid>`. Whoever can write there can join the user's switches, so the
 * directory must be a real directory (not a link), owned by this user, with no access for group
 * or others; one that is not (another user made it first in a shared /tmp) is refused, never
 * repaired or used.
 */
import { lstatSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';

export class RuntimeDirError extends Error {}

/** The base directory for this user (not created). */
export function runtimeBase(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && isAbsolute(xdg)) return join(xdg, 'wasmvisor');
  return join(tmpdir(), `wasmvisor-${process.getuid?.() ?? 'user'}`);
}

/** Creates `dir` (mode 0700) if missing and checks that it is private to this user. */
export function privateDir(dir: string): string {
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new RuntimeDirError(`${dir}: ${(e as Error).message}`);
    }
  }
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new RuntimeDirError(`${dir} is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid)
    throw new RuntimeDirError(`${dir} belongs to another user`);
  if ((st.mode & 0o077) !== 0)
    throw new RuntimeDirError(
      `${dir} is open to other users (mode ${(st.mode & 0o777).toString(8)})`,
    );
  return dir;
}
