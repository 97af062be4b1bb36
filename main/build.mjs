// Bundles the `wasmvisor` CLI and the VM worker with esbuild into dist/bundle/ (cli.js,
// vm-worker.js, shared chunks, source maps). Node's ESM loader then resolves and reads a few files
// instead of ~170 at each start — about 30 ms off the CLI's start and 40 ms off the worker's
// (bench/startup.ts). tsc still writes the plain dist/main tree (tests, benches and Electron's
// main process import it); bin/wasmvisor.mjs and vmWorkerPath() prefer the bundles.
//
// dist/bundle is one level below dist/, like dist/devices, so the paths the modules find from
// their own location still resolve there: dist/wasm/core.wasm, dist/native/*.node, guest/images.
// Packages (ws) stay imports, resolved from node_modules as before.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'bundle');
rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: {
    cli: join(root, 'main', 'cli', 'index.ts'),
    'vm-worker': join(root, 'main', 'worker', 'vm-worker.ts'),
  },
  outdir: out,
  bundle: true,
  // Code only `wasmvisor ui` or `img` needs sits in chunks that `run` never loads.
  splitting: true,
  chunkNames: 'chunk-[hash]',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  sourcemap: true,
  logLevel: 'warning',
});
