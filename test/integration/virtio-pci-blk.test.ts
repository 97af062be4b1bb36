/**
 * A virtio-blk disk on PCIe (`--disk PATH,bus=pci`) with the bundled guest: Linux's virtio_pci
 * binds function 1af4:1042 and virtio_blk makes it /dev/vda; the guest reads the image's first
 * MiB (md5sum equal to the host's) and writes a marker with fsync that the host finds in the
 * file after the VM stops. The device list shows it as a PCI function with the disk's controls
 * (the scheduler switched through them).
 */
import { describe, it, expect } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtMachine } from '../../main/vm/machine.js';
import { defaultVmConfig, parseDiskSpec, type VmConfig } from '../../main/vm/config.js';
import { applyControl, withControls } from '../../main/worker/device-controls.js';
import { SwitchableDisk } from '../../main/worker/controls/disk-controls.js';
import { pciVirtioRows } from '../../main/worker/device-rows.js';
import { InProcessGuest as Guest } from '../../bench/in-process-guest.js';

const MARK_AT = 2 << 20;
const MARK = 'wasmvisor-on-pci';

describe('virtio-blk on virtio-pci', () => {
  it('is /dev/vda behind 1af4:1042; reads match the image, an fsynced write reaches the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wv-vpci-blk-'));
    const path = join(dir, 'disk.raw');
    const head = randomBytes(1 << 20);
    const image = Buffer.alloc(4 << 20);
    head.copy(image);
    writeFileSync(path, image);
    const md5 = createHash('md5').update(head).digest('hex');
    const config: VmConfig = {
      ...defaultVmConfig('vpciblk'),
      disks: [parseDiskSpec(`${path},bus=pci`)],
    };
    expect(config.disks[0].bus).toBe('pci');
    const vm = await VirtMachine.open(config, undefined, {
      wrapDisk: (d) => new SwitchableDisk(d),
    });
    const g = new Guest(vm);
    try {
      await g.expect(/~# /, 120_000);
      const fn = await g.run(
        'd=$(readlink -f /sys/block/vda/device/..); echo "fn ${d##*/} $(cat $d/vendor):$(cat $d/device) $(basename $(readlink $d/driver))"',
        /^fn (\S+) 0x([0-9a-f]{4}):0x([0-9a-f]{4}) (\S+)\r?$/m,
      );
      expect(fn.slice(1)).toEqual(['0000:00:01.0', '1af4', '1042', 'virtio-pci']);
      const got = await g.run(
        'dd if=/dev/vda bs=65536 count=16 2>/dev/null | md5sum',
        /^([0-9a-f]{32}) {2}-\r?$/m,
      );
      expect(got[1]).toBe(md5);
      await g.run(
        `printf ${MARK} | dd of=/dev/vda bs=512 seek=${MARK_AT / 512} conv=fsync 2>/dev/null; echo w""rote`,
        /^wrote\r?$/m,
      );

      const ctx = { machine: vm, config, dataDir: dir };
      const rows = withControls(pciVirtioRows(vm.pci.functions(), vm.virtioPci, config.disks), ctx);
      const r = rows.find((x) => x.name === 'virtio-blk0')!;
      expect(r.model).toBe('pci 00:01.0 virtio-pci block');
      expect(r.state).toBe('active');
      expect(r.backend).toMatch(/^raw .*disk\.raw \(cache=writeback, sched=noop\)$/);
      expect(r.controls?.map((c) => c.id)).toEqual(['readOnly', 'cache', 'sched']);
      await expect(applyControl('virtio-blk0', 'sched', 'deadline', ctx)).resolves.toBe(
        'virtio-blk0: scheduler deadline',
      );
      const s = vm.stats().virtio['virtio-blk0'];
      expect(s.needs_reset).toBe(0);
      expect(s.interrupts).toBeGreaterThan(0);
    } finally {
      vm.stop();
      await g.done;
      await vm.close();
    }
    try {
      const after = readFileSync(path);
      expect(after.subarray(MARK_AT, MARK_AT + MARK.length).toString()).toBe(MARK);
      expect(after.subarray(0, 1 << 20).equals(head)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
