import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { defaultVmConfig, type VmConfig } from '../../../main/vm/config.js';
import { preloadBootImages } from '../../../main/vm/images.js';
import { bundledGuest } from '../../../main/vm/bundled-guest.js';
import { VirtMachine } from '../../../main/vm/machine.js';

/** The error a config's machine fails with, or undefined when it builds. */
function buildError(cfg: VmConfig, preloaded?: Parameters<typeof VirtMachine.fromConfig>[3]) {
  try {
    VirtMachine.fromConfig(cfg, undefined, [], preloaded);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

describe('boot images read ahead by the host (preloadBootImages)', () => {
  it('gives the bundled guest with its kernel decompressed, and the machine boots the same', async () => {
    const cfg = defaultVmConfig();
    const files = bundledGuest();
    const pre = await preloadBootImages(cfg);
    expect(pre).toBeDefined();
    expect(Buffer.compare(pre!.kernel.data, gunzipSync(readFileSync(files.kernel)))).toBe(0);
    expect(Buffer.compare(pre!.initrd!.data, readFileSync(files.initrd))).toBe(0);
    expect(pre!.kernel.name).toBe(files.kernel);
    const read = VirtMachine.fromConfig(cfg);
    const given = VirtMachine.fromConfig(cfg, undefined, [], pre);
    expect(given.boot).toEqual(read.boot);
    expect(given.core.pc).toBe(read.core.pc);
  });

  it('leaves a kernel the loader would refuse as it is, so its message is unchanged', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wasmvisor-preload-'));
    try {
      const corrupt = join(dir, 'corrupt.gz');
      const gz = gzipSync(Buffer.alloc(1 << 16, 7));
      writeFileSync(corrupt, Buffer.concat([gz.subarray(0, 40), Buffer.alloc(64, 0xff)]));
      const twice = join(dir, 'twice.gz');
      writeFileSync(twice, gzipSync(gzipSync(Buffer.from('not a kernel'))));
      for (const kernel of [corrupt, twice]) {
        const cfg: VmConfig = { ...defaultVmConfig(), kernel };
        const pre = await preloadBootImages(cfg);
        expect(Buffer.compare(pre!.kernel.data, readFileSync(kernel))).toBe(0);
        expect(buildError(cfg, pre)).toBe(buildError(cfg));
      }
      expect(buildError({ ...defaultVmConfig(), kernel: corrupt })).toMatch(/gzip data is corrupt/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives nothing when a file cannot be read: the worker reads it and names it', async () => {
    const cfg: VmConfig = { ...defaultVmConfig(), kernel: '/nonexistent/Image' };
    expect(await preloadBootImages(cfg)).toBeUndefined();
    expect(buildError(cfg)).toMatch(/kernel \/nonexistent\/Image: no such file/);
  });
});
