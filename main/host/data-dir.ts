/** The per-platform user data directory where VM definitions live. */
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Overrides the directory (tests, portable installs). */
export const DATA_DIR_ENV = 'WASMVISOR_DATA_DIR';

export function userDataDir(
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
  home: string = homedir(),
): string {
  if (env[DATA_DIR_ENV]) return env[DATA_DIR_ENV];
  if (platform === 'win32')
    return join(env.APPDATA || join(home, 'AppData', 'Roaming'), 'wasmvisor');
  if (platform === 'darwin') return join(home, 'Library', 'Application Support', 'wasmvisor');
  return join(env.XDG_CONFIG_HOME || join(home, '.config'), 'wasmvisor');
}
