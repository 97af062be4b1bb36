/**
 * A share switched between read-write and read-only while the guest has it mounted: the next
 * request follows the switch, a file already open for writing included; nothing else is lost.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { errnoOf, O, setup, type Fixture } from './guest.js';

let f: Fixture | undefined;
afterEach(() => f?.cleanup());

it('refuses changes from the switch to read-only on, and takes them again after the switch back', () => {
  f = setup();
  writeFileSync(join(f.root, 'log'), '');
  f.g.walk(0, 1, 'log');
  f.g.lopen(1, O.WRONLY);
  expect(f.g.write(1, 0, 'one ')).toBe(4);
  f.server.readOnly = true;
  expect(f.server.readOnly).toBe(true);
  expect(errnoOf(() => f!.g.write(1, 4, 'two '))).toBe(30); // EROFS, on the open file
  expect(errnoOf(() => f!.g.mkdir(0, 'dir'))).toBe(30);
  expect(f.g.getattr(1).size).toBe(4n); // reads go on
  f.server.readOnly = false;
  expect(f.g.write(1, 4, 'three')).toBe(5);
  f.g.mkdir(0, 'dir');
  expect(readFileSync(join(f.root, 'log'), 'utf8')).toBe('one three');
});
