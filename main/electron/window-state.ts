/** The main window's size and position, kept across launches in the user data dir. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface WindowState {
  width: number;
  height: number;
  x?: number;
  y?: number;
  maximized: boolean;
}

const DEFAULT: WindowState = { width: 1360, height: 860, maximized: false };

export function loadWindowState(dataDir: string): WindowState {
  try {
    const v = JSON.parse(
      readFileSync(join(dataDir, 'window.json'), 'utf8'),
    ) as Partial<WindowState>;
    const num = (n: unknown, min: number) => (typeof n === 'number' && n >= min ? n : undefined);
    return {
      width: num(v.width, 640) ?? DEFAULT.width,
      height: num(v.height, 400) ?? DEFAULT.height,
      x: num(v.x, -10_000),
      y: num(v.y, -10_000),
      maximized: v.maximized === true,
    };
  } catch {
    return DEFAULT; // first launch, or a file we cannot read: the default size is fine
  }
}

export function saveWindowState(dataDir: string, s: WindowState): void {
  try {
    writeFileSync(join(dataDir, 'window.json'), JSON.stringify(s) + '\n');
  } catch {
    /* not worth failing the quit over */
  }
}
