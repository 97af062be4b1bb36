// Compiles the AssemblyScript core (and test harness entries) to WebAssembly with asc.
// Output goes to dist/wasm/, which is not committed.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const asc = join(root, 'node_modules', 'assemblyscript', 'bin', 'asc.js');
const outDir = join(root, 'dist', 'wasm');
mkdirSync(outDir, { recursive: true });

/** Each target is one entry file compiled to one module. */
const targets = [
  { entry: 'wasm-core/index.ts', out: 'core.wasm' },
  { entry: 'wasm-core/index-jit.ts', out: 'core-jit.wasm' },
  { entry: 'wasm-core/harness/fpu.ts', out: 'fpu-harness.wasm' },
];

const common = [
  '--runtime', 'stub',
  '--optimizeLevel', '3',
  '--shrinkLevel', '0',
  '--noAssert',
  '--enable', 'bulk-memory',
  '--enable', 'sign-extension',
  '--enable', 'nontrapping-f2i',
];

for (const t of targets) {
  const out = join(outDir, t.out);
  execFileSync(process.execPath, [asc, join(root, t.entry), '-o', out, ...common], {
    stdio: 'inherit',
    cwd: root,
  });
}
