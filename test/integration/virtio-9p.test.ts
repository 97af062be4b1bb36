/**
 * Shared folders in the bundled guest: Linux's own 9p file system over virtio (9pnet_virtio)
 * mounts two host folders given with `--share`, one writable on virtio-mmio and one read-only
 * on PCIe (virtio-pci). The guest reads
 * what the host put there, writes, renames, links and removes, and the host sees exactly that;
 * the read-only share refuses changes; a host symlink that points outside the share leads
 * nowhere; a VM with the share mounted refuses to be saved, and saves once it is unmounted.
 */
import { describe, it, expect } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialSession } from './serial-session.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'bin', 'wasmvisor.mjs');
const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

describe('virtio-9p shared folders in the bundled guest', () => {
  it('mounts host folders read-write and read-only; the host sees what the guest did', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'wv-9p-'));
    const rw = join(tmp, 'rw');
    const ro = join(tmp, 'ro');
    mkdirSync(rw);
    mkdirSync(join(rw, 'sub'));
    mkdirSync(ro);
    const hostData = randomBytes(300_000);
    writeFileSync(join(rw, 'from-host.bin'), hostData);
    writeFileSync(join(ro, 'notes.txt'), 'read me\n');
    // Outside both shares: nothing the guest does may read it.
    writeFileSync(join(tmp, 'secret.txt'), 'TOPSECRET\n');
    symlinkSync(join(tmp, 'secret.txt'), join(rw, 'leak'));
    symlinkSync('../secret.txt', join(rw, 'leak-rel'));
    const s = SerialSession.spawn(
      process.execPath,
      [cli, 'run', '--share', `${rw},tag=work`, '--share', `${ro},tag=docs,ro,bus=pci`],
      { logFile: join(root, 'test-artifacts', 'virtio-9p.log') },
    );
    const sh = async (cmd: string, re: RegExp, ms = 20_000) => {
      s.sendLine(cmd);
      return (await s.expect(re, ms)).match;
    };
    const monitor = async (cmd: string, reply: RegExp): Promise<string> => {
      s.send('\x01c');
      await s.expect('(wasmvisor) ', 5_000);
      s.sendLine(cmd);
      const r = await s.expect(reply, 20_000);
      s.send('\x01c');
      return r.match[0];
    };
    try {
      await s.expect(/~# /, 60_000);
      await sh('mkdir -p /mnt/w /mnt/d && echo ok', /^ok\r?$/m);
      await sh(
        'mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 work /mnt/w && echo mounted',
        /^mounted\r?$/m,
      );
      await sh('mount -t 9p -o trans=virtio docs /mnt/d && echo mounted2', /^mounted2\r?$/m);
      // What the host put there, byte for byte.
      const m = await sh('md5sum /mnt/w/from-host.bin', /^([0-9a-f]{32})\s+\/mnt\/w/m);
      expect(m[1]).toBe(md5(hostData));
      await sh('cat /mnt/d/notes.txt', /^read me\r?$/m);
      // Writes, a large one included, land in the host folder.
      await sh(
        'dd if=/dev/urandom of=/mnt/w/big bs=65536 count=64 2>/dev/null; md5sum /mnt/w/big',
        /^([0-9a-f]{32})\s+\/mnt\/w\/big/m,
      ).then((r) => expect(md5(readFileSync(join(rw, 'big')))).toBe(r[1]));
      await sh(
        'echo hello > /mnt/w/sub/a.txt && mv /mnt/w/sub /mnt/w/moved && ' +
          'ln -s a.txt /mnt/w/moved/link && ln /mnt/w/moved/a.txt /mnt/w/hard && ' +
          'mkdir /mnt/w/gone && rmdir /mnt/w/gone && echo done1',
        /^done1\r?$/m,
      );
      expect(readFileSync(join(rw, 'moved', 'a.txt'), 'utf8')).toBe('hello\n');
      expect(existsSync(join(rw, 'sub'))).toBe(false);
      expect(readlinkSync(join(rw, 'moved', 'link'))).toBe('a.txt');
      expect(lstatSync(join(rw, 'hard')).nlink).toBe(2);
      expect(existsSync(join(rw, 'gone'))).toBe(false);
      await sh('cat /mnt/w/moved/link; echo end', /^hello\r?\r?\nend\r?$/m);
      await sh('chmod 600 /mnt/w/hard && truncate -s 3 /mnt/w/hard && echo done2', /^done2\r?$/m);
      expect(lstatSync(join(rw, 'hard')).mode & 0o777).toBe(0o600);
      expect(readFileSync(join(rw, 'moved', 'a.txt'), 'utf8')).toBe('hel');
      await sh(
        'ls -a /mnt/w | tr "\\n" " "; echo',
        /^\. \.\. big from-host\.bin hard leak leak-rel moved \r?$/m,
      );
      // A program copied into the share runs from it (the guest maps it from the share).
      await sh(
        'cp /bin/busybox /mnt/w/echo && /mnt/w/echo EXEC-$((6*7)) && rm /mnt/w/echo',
        /^EXEC-42\r?$/m,
      );
      // The read-only share refuses, and the host folder is unchanged.
      await sh('touch /mnt/d/x 2>&1; rm /mnt/d/notes.txt 2>&1; echo done3', /^done3\r?$/m);
      expect(s.output).toMatch(/Read-only file system/);
      expect(existsSync(join(ro, 'notes.txt'))).toBe(true);
      expect(existsSync(join(ro, 'x'))).toBe(false);
      // Host symlinks out of the share resolve in the guest's namespace, never the host's.
      await sh('cat /mnt/w/leak /mnt/w/leak-rel 2>&1; echo done4', /^done4\r?$/m);
      expect(s.output).not.toMatch(/TOPSECRET/);
      await sh('rm /mnt/w/big && echo done5', /^done5\r?$/m);
      expect(existsSync(join(rw, 'big'))).toBe(false);
      // Switched read-only from the monitor while mounted, and back.
      expect(await monitor('info shares', /virtio-9p0: host folder [^\r\n]*/)).toMatch(
        /\(tag work\); read-write; active, mounted$/,
      );
      await monitor('share_access virtio-9p0 ro', /read-only for the guest/);
      await sh('touch /mnt/w/late 2>&1 | grep -c "Read-only"', /^1\r?$/m);
      expect(existsSync(join(rw, 'late'))).toBe(false);
      await monitor('share_access virtio-9p0 rw', /read-write for the guest/);
      await sh('touch /mnt/w/late && echo done6', /^done6\r?$/m);
      expect(existsSync(join(rw, 'late'))).toBe(true);
      // Mounted, the VM cannot be saved; unmounted, it can.
      const state = join(tmp, 'vm.state');
      await monitor(`save ${state}`, /cannot save: the guest has shared folder "work"[^\r\n]*/);
      expect(existsSync(state)).toBe(false);
      await sh('umount /mnt/w /mnt/d && echo unmounted', /^unmounted\r?$/m);
      await monitor(`save ${state}`, /saved to [^\r\n]*the VM stopped/);
      expect((await s.waitForExit(30_000)).code).toBe(0);
      // Resumed in a new process, the VM has its shares again and mounts them.
      const r = SerialSession.spawn(process.execPath, [cli, 'run', '--restore', state], {
        logFile: join(root, 'test-artifacts', 'virtio-9p-restored.log'),
      });
      try {
        r.sendLine('mount -t 9p -o trans=virtio work /mnt/w && cat /mnt/w/moved/a.txt; echo');
        await r.expect(/^hel\r?$/m, 60_000);
        r.sendLine('poweroff');
        expect((await r.waitForExit(30_000)).code).toBe(0);
      } finally {
        await r.close();
      }
    } finally {
      await s.close();
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 180_000);
});
