/** The renderer's built files (dist/renderer), served by name only: no paths, no traversal. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

export function rendererDir(): string {
  const candidates = [
    join(here, '..', '..', 'renderer'), // dist/main/server → dist/renderer
    join(here, '..', 'renderer'), // dist/bundle (the bundled CLI) → dist/renderer
    join(here, '..', '..', 'dist', 'renderer'), // main/server (sources, under vitest)
  ];
  // app.js, not index.html: from dist/bundle the first candidate is the renderer's sources.
  const found = candidates.find((d) => existsSync(join(d, 'app.js')));
  if (!found) throw new Error('dist/renderer/index.html not found: run `npm run build` first');
  return found;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.map': 'application/json',
};

export interface StaticFile {
  type: string;
  body: Buffer;
}

/** `name` is one path segment from the URL; anything else is not found. */
export function readStatic(dir: string, name: string): StaticFile | undefined {
  if (!/^[\w-]+(\.[\w-]+)*$/.test(name)) return undefined;
  const type = TYPES[extname(name)];
  const file = join(dir, name);
  if (!type || !existsSync(file)) return undefined;
  return { type, body: readFileSync(file) };
}
