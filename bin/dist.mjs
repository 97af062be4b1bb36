#!/usr/bin/env node
// `npm run dist`: packages the desktop app with electron-builder (targets in electron-builder.yml).
// Neither Electron (an optional dependency whose binary comes from GitHub, not npm) nor
// electron-builder (≈280 packages used only for packaging) is needed to build, test or run
// wasmvisor, so where either is missing this says what to install and fails: a packaging run
// that silently produced nothing would look like success to CI.
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const fail = (msg) => {
  console.error(`wasmvisor: npm run dist: ${msg}`);
  process.exit(1);
};

let electron;
try {
  electron = require('electron'); // the binary's path when its download succeeded
} catch {
  electron = undefined;
}
if (typeof electron !== 'string' || !existsSync(electron)) {
  fail(
    'Electron is not installed here (its binary download needs access to GitHub); ' +
      'run `npm install electron` where it can, then try again',
  );
}
let builderCli;
try {
  builderCli = require.resolve('electron-builder/cli.js');
} catch {
  fail(
    'electron-builder is not installed (it is not a dependency: packaging only); ' +
      'run `npm install --no-save electron-builder@26`, then try again',
  );
}

const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
run(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', 'build']);
// Package the Electron that is installed, so electron-builder does not download another one.
const electronPkg = JSON.parse(readFileSync(require.resolve('electron/package.json'), 'utf8'));
run(process.execPath, [
  builderCli,
  '--config',
  'electron-builder.yml',
  `-c.electronDist=${join(dirname(require.resolve('electron/package.json')), 'dist')}`,
  `-c.electronVersion=${electronPkg.version}`,
  ...process.argv.slice(2),
]);
