/**
 * A read-only share: every change is refused with EROFS and the host tree stays exactly as it
 * was, while reading still works.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { errnoOf, O, setup, snapshot, type Fixture } from './guest.js';

let f: Fixture;
let before: string;
beforeEach(() => {
  f = setup({ readOnly: true });
  mkdirSync(join(f.root, 'dir'));
  mkdirSync(join(f.root, 'empty'));
  writeFileSync(join(f.root, 'dir/file'), 'original');
  before = snapshot(f.root);
  f.g.walk(0, 1, 'dir'); // a directory fid
  f.g.walk(0, 2, 'dir', 'file'); // a file fid
});
afterEach(() => {
  expect(snapshot(f.root)).toBe(before);
  f.cleanup();
});

const EROFS = 30;
const changes: [string, () => unknown][] = [
  ['lcreate', () => f.g.lcreate(1, 'new', O.RDWR | O.CREAT)],
  ['lopen for writing', () => f.g.lopen(2, O.WRONLY)],
  ['lopen read-write', () => f.g.lopen(2, O.RDWR)],
  ['lopen with O_TRUNC', () => f.g.lopen(2, O.RDONLY | O.TRUNC)],
  ['setattr size', () => f.g.setattr(2, 8, { size: 0 })],
  ['setattr mode', () => f.g.setattr(2, 1, { mode: 0o777 })],
  ['setattr times', () => f.g.setattr(2, 0x30, {})],
  ['mkdir', () => f.g.mkdir(1, 'sub')],
  ['mknod', () => f.g.mknod(1, 'node', 0o100644)],
  ['symlink', () => f.g.symlink(1, 'ln', 'file')],
  ['link', () => f.g.link(1, 2, 'hard')],
  ['rename', () => f.g.rename(2, 0, 'moved')],
  ['renameat', () => f.g.renameat(1, 'file', 0, 'moved')],
  ['unlinkat file', () => f.g.unlinkat(1, 'file')],
  ['unlinkat dir', () => f.g.unlinkat(0, 'empty', 0x200)],
  ['remove', () => f.g.remove(2)],
];

for (const [name, change] of changes) {
  it(`refuses ${name} with EROFS`, () => {
    expect(errnoOf(change)).toBe(EROFS);
  });
}

it('still reads, lists and stats', () => {
  f.g.lopen(2, O.RDONLY);
  expect(f.g.read(2, 0, 100).toString()).toBe('original');
  expect(errnoOf(() => f.g.write(2, 0, 'x'))).toBe(EROFS);
  f.g.lopen(1, O.RDONLY);
  expect(f.g.readdirAll(1).map((e) => e.name)).toContain('file');
  expect(f.g.getattr(2).size).toBe(8n);
  expect(f.g.statfs(0).namelen).toBe(255);
});
