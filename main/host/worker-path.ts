/** Finds the compiled VM worker, from dist/ or (under vitest) from the TypeScript sources. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

export function vmWorkerPath(): string {
  const candidates = [
    join(here, '..', 'worker', 'vm-worker.js'), // dist/main/host → dist/main/worker
    join(here, '..', '..', 'dist', 'main', 'worker', 'vm-worker.js'), // main/host (sources)
  ];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error('dist/main/worker/vm-worker.js not found: run `npm run build` first');
  return found;
}
