#!/usr/bin/env node
// `npm start`: launches the Electron app where its binary is installed. Electron is an optional
// dependency (its binary download needs network access npm alone does not give), so where it is
// missing this says so and starts web mode (`wasmvisor ui`: the same UI in a browser).
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
let electron;
try {
  electron = require('electron'); // resolves to the binary's path when installed
} catch {
  electron = undefined;
}
const shell = join(root, 'dist', 'main', 'electron', 'main.js');
if (typeof electron === 'string' && existsSync(shell)) {
  const child = spawn(electron, [root], { stdio: 'inherit' });
  child.on('exit', (code) => process.exit(code ?? 0));
} else {
  const why =
    typeof electron === 'string'
      ? 'the desktop shell is not part of this build'
      : 'Electron is not installed here, so the desktop window cannot open';
  console.log(`wasmvisor: ${why}; starting web mode instead (open the URL below in a browser).`);
  const child = spawn(process.execPath, [join(root, 'bin', 'wasmvisor.mjs'), 'ui'], {
    stdio: 'inherit',
  });
  // Ctrl-C reaches the child through the terminal's process group; it then stops its VMs.
  process.on('SIGINT', () => {});
  child.on('exit', (code) => process.exit(code ?? 0));
}
