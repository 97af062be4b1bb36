/**
 * net=user's TFTP server with the bundled guest: a virtio-net on `user,tftp=DIR,bootfile=NAME`
 * gets its lease at boot by itself; udhcpc, asked again, is told the boot file and the next
 * server 10.0.2.2; busybox `tftp -g` fetches a 384 KiB file of random bytes from 10.0.2.2 in
 * 512-byte blocks and again with `-b 1400` (blksize negotiated), and md5sum in the guest matches
 * the host's; a `../` name outside DIR fails with an access violation.
 */
import { describe, it, expect } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtMachine } from '../../main/vm/machine.js';
import { defaultVmConfig } from '../../main/vm/config.js';
import { InProcessGuest as Guest } from '../../bench/in-process-guest.js';

/** A udhcpc script that only says what the server told it. */
const DHCP_SCRIPT = '#!/bin/sh\n[ "$1" = bound ] && echo "boot=$boot_file next=$siaddr"\n';

describe('net=user tftp=', () => {
  it('busybox tftp fetches a file intact (512 and 1400-byte blocks); ../ is refused', async () => {
    const base = mkdtempSync(join(tmpdir(), 'wasmvisor-tftp-'));
    const dir = join(base, 'srv');
    mkdirSync(dir);
    const body = randomBytes(384 * 1024 + 123);
    writeFileSync(join(dir, 'boot.img'), body);
    writeFileSync(join(base, 'outside.txt'), 'not for the guest\n');
    const md5 = createHash('md5').update(body).digest('hex');
    const cfg = {
      ...defaultVmConfig('tftpvm'),
      nics: [
        {
          model: 'virtio' as const,
          net: `user,tftp=${dir},bootfile=boot.img`,
          mac: '52:54:00:12:38:01',
        },
      ],
    };
    const g = new Guest(await VirtMachine.open(cfg));
    try {
      await g.expect(/~# /, 120_000);
      await g.run(
        'for i in $(seq 100); do ip -4 -o addr | grep -q 10.0.2.15 && break; sleep 0.2; done; ip -4 -o addr',
        /inet 10\.0\.2\.15\/24/,
      );
      await g.run(
        `printf '${DHCP_SCRIPT.replace(/\n/g, '\\n')}' > /tmp/s.sh; chmod +x /tmp/s.sh; udhcpc -i eth0 -q -n -t 5 -s /tmp/s.sh`,
        /boot=boot\.img next=10\.0\.2\.2/,
      );
      await g.run(
        'tftp -g -r boot.img -l /tmp/a 10.0.2.2 && md5sum /tmp/a',
        new RegExp(`^${md5}  /tmp/a`, 'm'),
      );
      const frames = () => g.vm.stats().nics![g.vm.nic(0).name].net_backend_frames_to_guest;
      const before = frames();
      await g.run(
        'tftp -g -b 1400 -r boot.img -l /tmp/b 10.0.2.2 && md5sum /tmp/b',
        new RegExp(`^${md5}  /tmp/b`, 'm'),
      );
      // 1400-byte blocks: 281 DATA frames and the OACK (512-byte ones would take 769).
      expect(frames() - before).toBeGreaterThanOrEqual(282);
      expect(frames() - before).toBeLessThan(300);
      const r = await g.run(
        'tftp -g -r ../outside.txt -l /tmp/c 10.0.2.2; echo "rc=$?"; cat /tmp/c 2>/dev/null',
        /([^\n]*)\r?\nrc=(\d+)\r?\n/,
      );
      expect(r[1]).toMatch(/access violation/i);
      expect(Number(r[2])).not.toBe(0);
      expect(g.out).not.toContain('not for the guest');
      const s = g.vm.stats().nics![g.vm.nic(0).name];
      expect(s).toMatchObject({
        net_backend_tftp_files_sent: 2,
        net_backend_tftp_bytes: 2 * body.length,
        net_backend_tftp_denied: 1,
        net_backend_tftp_oacks: 2, // busybox asks for tsize too
        net_backend_tftp_sessions: 0,
      });
      expect(s.net_backend_drop_internal_error ?? 0).toBe(0);
    } finally {
      g.vm.stop();
      await g.done;
      await g.vm.close();
      rmSync(base, { recursive: true, force: true });
    }
  }, 120_000);
});
