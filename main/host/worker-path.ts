/**
 * Finds the compiled VM worker: the bundle (dist/bundle/vm-worker.js, main/build.mjs) when it is
 * there, as it starts about 40 ms sooner, else tsc's dist/main/worker/vm-worker.js; from the
 * bundled CLI, from dist/main, or (under vitest) from the TypeScript sources.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

export function vmWorkerPath(): string {
  const candidates = [
    join(here, 'vm-worker.js'), // dist/bundle (this code bundled into cli.js)
    join(here, '..', '..', 'bundle', 'vm-worker.js'), // dist/main/host → dist/bundle
    join(here, '..', '..', 'dist', 'bundle', 'vm-worker.js'), // main/host (sources)
    join(here, '..', 'worker', 'vm-worker.js'), // dist/main/host → dist/main/worker
    join(here, '..', '..', 'dist', 'main', 'worker', 'vm-worker.js'), // main/host (sources)
  ];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error('dist/main/worker/vm-worker.js not found: run `npm run build` first');
  return found;
}
