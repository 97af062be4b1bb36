/**
 * The passphrase prompt of `wasmvisor run`: asked only for encrypted disks without key-file and
 * only on a terminal, typed without echo (Backspace and Ctrl-U edit, Ctrl-C gives up), and the
 * key reaches the disk: it opens.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { askDiskKeys } from '../../../main/cli/disk-keys.js';
import { createLuks } from '../../../devices/block/luks/create.js';
import { createQcow2 } from '../../../devices/block/qcow2/index.js';
import { openDisk } from '../../../devices/block/index.js';
import { parseDiskSpec } from '../../../main/vm/config.js';

let dir: string;
const pass = new TextEncoder().encode('s3cret');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wasmvisor-luks-prompt-'));
  await createLuks(join(dir, 'a.luks'), 1 << 20, { passphrase: pass, iterTimeMs: 5 });
  await createQcow2(join(dir, 'plain.qcow2'), { size: 1 << 20 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A fake terminal: `typed` arrives as keystrokes once the prompt reads; output is collected. */
function terminal(typed: string, tty = true) {
  const input = new PassThrough() as PassThrough & {
    isTTY: boolean;
    setRawMode(on: boolean): void;
  };
  input.isTTY = tty;
  const modes: boolean[] = [];
  input.setRawMode = (on: boolean) => void modes.push(on);
  let shown = '';
  const output = new PassThrough();
  output.on('data', (d: Buffer) => (shown += d.toString()));
  setImmediate(() => input.write(typed));
  return {
    term: { input: input as unknown as NodeJS.ReadStream, output },
    shown: () => shown,
    modes,
  };
}

describe('passphrase prompt', () => {
  it('asks for the encrypted disk only, without echo, and the key opens it', async () => {
    const disks = [
      parseDiskSpec(`${join(dir, 'plain.qcow2')},format=qcow2`),
      parseDiskSpec(`${join(dir, 'a.luks')},format=luks`),
    ];
    const t = terminal('s3x\x7fcret\r');
    const keys = await askDiskKeys(disks, t.term);
    expect(keys?.[0]).toBeNull();
    expect(new TextDecoder().decode(keys![1]!)).toBe('s3cret');
    expect(t.shown()).toBe(`wasmvisor: passphrase for ${disks[1]!.path}: \n`);
    expect(t.modes).toEqual([true, false]); // raw (no echo) while typing, restored after
    const d = await openDisk(disks[1]!, { key: keys![1]! });
    expect(d.size).toBe(1 << 20);
    await d.close();
  });

  it('asks nothing without a terminal or with a key file; Ctrl-C gives up', async () => {
    const luks = parseDiskSpec(`${join(dir, 'a.luks')},format=luks`);
    expect(await askDiskKeys([luks], terminal('x\r', false).term)).toBeUndefined();
    const withFile = parseDiskSpec(`${join(dir, 'a.luks')},format=luks,key-file=/nonexistent`);
    expect(await askDiskKeys([withFile], terminal('x\r').term)).toBeUndefined();
    await expect(askDiskKeys([luks], terminal('ab\x03').term)).rejects.toThrow(/no key given/);
  });
});
