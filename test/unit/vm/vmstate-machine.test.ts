/**
 * Saving a whole running machine and resuming it: the bundled guest boots to its shell on hvc0
 * with two disks (raw on virtio-mmio, qcow2 on virtio-pci), three NICs (e1000, virtio-mmio,
 * virtio-pci), rng and a balloon; a shell variable
 * is set; the VM is saved to a file and a second machine built from that file answers with the
 * variable. Save → restore → save gives the same bytes for every device, RAM and ROM. Files that
 * do not fit the VM they describe (RAM size, device list, versions, CPU) are refused with a
 * message naming the file and the problem.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, statSync, writeFileSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtMachine } from '../../../main/vm/machine.js';
import { defaultVmConfig, type VmConfig } from '../../../main/vm/config.js';
import { captureMachine } from '../../../main/vm/vmstate/machine-state.js';
import { openSavedVm } from '../../../main/vm/vmstate/resume.js';
import {
  parseSavedVm,
  readSavedVm,
  saveVm,
  type SavedVm,
} from '../../../main/vm/vmstate/saved-vm.js';
import {
  encodeJson,
  encodeStateFile,
  StateFileError,
  type Section,
} from '../../../main/vm/vmstate/file-format.js';
import { readFileSync } from 'node:fs';
import { createQcow2 } from '../../../devices/block/qcow2/create.js';
import type { BlockBackend } from '../../../devices/block/backend.js';

const te = new TextDecoder();

/** Runs a machine, collecting its console output. */
let lastOut = '';
function start(vm: VirtMachine): { out: () => string; done: Promise<unknown> } {
  let out = '';
  vm.onConsoleOutput = (b) => (lastOut = out += te.decode(b));
  return { out: () => out, done: vm.run() };
}

async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms)
      throw new Error(`timed out waiting for ${what}: ${lastOut.slice(-600)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The CPU section without the mtime slot (the clock runs on between two captures). */
const cpuWithoutTime = (b: Uint8Array): Uint8Array => {
  const c = b.slice();
  c.fill(0, 115 * 8, 116 * 8);
  return c;
};

describe('saving and resuming a whole VM', () => {
  let dir: string;
  let cfg: VmConfig;
  let file: string;
  let first: VirtMachine;
  let firstSections: Section[];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-vmstate-'));
    const disk = join(dir, 'disk.img');
    writeFileSync(disk, new Uint8Array(1 << 20));
    const base = join(dir, 'base.raw');
    writeFileSync(base, new Uint8Array(4 << 20));
    const qcow = join(dir, 'disk.qcow2');
    await createQcow2(qcow, { backingFile: base, backingFormat: 'raw' });
    cfg = {
      ...defaultVmConfig('state'),
      memMiB: 64,
      rng: true,
      // The shell on the virtio-console, so its state is in the round trip too.
      console: 'hvc0',
      disks: [
        { path: disk, format: 'raw', readOnly: false, cache: 'writeback', sched: 'noop' },
        {
          path: qcow,
          format: 'qcow2',
          readOnly: false,
          cache: 'writeback',
          sched: 'noop',
          bus: 'pci',
        },
      ],
      nics: [
        { model: 'e1000', net: 'none' },
        { model: 'virtio', net: 'none' },
        { model: 'virtio-pci', net: 'none' },
      ],
      balloon: { enabled: true, freePageReporting: true, deflateOnOom: false, statsPeriodS: 0 },
      fwCfg: [{ name: 'opt/org.example/state', string: 'kept' }],
    };
    file = join(dir, 'saved.vm');
    first = await VirtMachine.open(cfg, () => {});
    const r = start(first);
    await until(() => /wasmvisor:[^\r\n]*# /.test(r.out()), 60_000, 'the shell prompt');
    // The guest writes both disks (through its page cache; the qcow2 one allocates on writeback).
    first.consoleInput(
      new TextEncoder().encode(
        'X=4242; echo disk-a > /dev/vda; echo disk-b > /dev/vdb; echo set-$X\r',
      ),
    );
    await until(() => r.out().includes('set-4242'), 10_000, 'the variable');
    await new Promise((res) => setTimeout(res, 100));
    first.pause();
    await new Promise((res) => setTimeout(res, 20));
    await saveVm(first, cfg, file);
    firstSections = captureMachine(first);
    // As `save` does: the saved VM ends, its disk images close (and their locks go).
    first.stop();
    await r.done;
    await first.close();
  }, 90_000);

  afterAll(async () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('resumes from the file: same RAM, ROM, CPU and device bytes, and the same shell answers', async () => {
    const saved = await readSavedVm(file);
    expect(saved.info.config.nics.every((n) => /^52:54:00:/.test(n.mac ?? ''))).toBe(true);
    const vm = await openSavedVm(saved, () => {});
    try {
      const again = captureMachine(vm);
      expect(again.map((s) => s.name)).toEqual(firstSections.map((s) => s.name));
      for (const [i, s] of again.entries()) {
        const want = firstSections[i];
        const [a, b] =
          s.name === 'cpu'
            ? [cpuWithoutTime(s.data), cpuWithoutTime(want.data)]
            : [s.data, want.data];
        expect(Buffer.compare(a, b), `section ${s.name}`).toBe(0);
        expect(s.version).toBe(want.version);
      }
      // The guest's clock continues from where it was saved, not from the host's.
      const savedMs = saved.info.guestMs;
      expect(Number(vm.core.time / 10_000n)).toBeGreaterThanOrEqual(savedMs);
      expect(Number(vm.core.time / 10_000n)).toBeLessThan(savedMs + 5_000);
      const r = start(vm);
      // The page cache dropped first, so the read goes through the restored virtio-pci disk
      // (its BAR mapping, queue and qcow2 image) and the bytes come from the image.
      vm.consoleInput(
        new TextEncoder().encode(
          'echo got-$X; sync; echo 3 > /proc/sys/vm/drop_caches; head -c 6 /dev/vdb; echo\r',
        ),
      );
      await until(() => r.out().includes('got-4242'), 20_000, 'the answer after resuming');
      await until(() => /^disk-b\r?$/m.test(r.out()), 20_000, 'the qcow2 disk read back');
      expect(vm.stats().virtio['virtio-blk1']?.read_bytes).toBeGreaterThan(0);
      // The NICs' drivers program their restored devices (e1000 and virtio-pci through their
      // BARs, virtio-mmio through its slot) when the interfaces go down and come up again
      // (the guest brought them up as it booted).
      vm.consoleInput(
        new TextEncoder().encode(
          'for n in /sys/class/net/eth*; do ip link set ${n##*/} down; ip link set ${n##*/} up; done; echo nics-$((1+1))\r',
        ),
      );
      await until(() => /^nics-2\r?$/m.test(r.out()), 20_000, 'the NICs to come up');
      expect(r.out()).not.toMatch(/Oops|Unable to handle|BUG:|timed out/);
      const exits = vm.stats().exits;
      const e1000Exits = Object.entries(exits)
        .filter(([name]) => name.startsWith('e1000'))
        .reduce((t, [, x]) => t + x.reads + x.writes, 0);
      expect(e1000Exits).toBeGreaterThan(0);
      vm.stop();
      await r.done;
    } finally {
      await vm.close();
    }
  }, 60_000);

  /** The saved file with `edit` applied to its sections, CRCs recomputed. */
  function edited(edit: (s: Section[]) => Section[]): SavedVm {
    const bytes = readFileSync(file);
    const base = parseSavedVm(bytes, file);
    return parseSavedVm(encodeStateFile(edit(base.sections.map((s) => ({ ...s })))), file);
  }
  const withConfig = (change: (c: VmConfig) => VmConfig) => (ss: Section[]) => {
    const vmSec = ss.find((s) => s.name === 'vm')!;
    const info = JSON.parse(te.decode(vmSec.data));
    info.config = change(info.config);
    vmSec.data = encodeJson(info);
    return ss;
  };

  async function refused(saved: SavedVm): Promise<string> {
    try {
      const vm = await openSavedVm(saved, () => {});
      await vm.close();
    } catch (e) {
      expect(e).toBeInstanceOf(StateFileError);
      expect((e as Error).message.startsWith(`${file}: `)).toBe(true);
      return (e as Error).message;
    }
    throw new Error('restored');
  }

  it('a real file cut at every section boundary is refused as truncated', () => {
    const bytes = readFileSync(file);
    const v = new DataView(bytes.buffer, bytes.byteOffset);
    let o = 32;
    const cuts: number[] = [];
    for (let i = 0; i < v.getUint32(12, true); i++) {
      cuts.push(o);
      const n = v.getUint32(o, true);
      o += 4 + n + 16 + Number(v.getBigUint64(o + 4 + n + 4, true));
    }
    expect(o).toBe(bytes.length);
    expect(cuts.length).toBeGreaterThan(15);
    for (const at of cuts) {
      expect(() => parseSavedVm(bytes.subarray(0, at), file)).toThrow(
        new StateFileError(`${file}: truncated: ${at} of ${bytes.length} bytes`),
      );
    }
  });

  it('garbled device states (CRCs made to match) are refused with the device named, or taken', async () => {
    // A seeded generator, so a failure can be replayed.
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const base = parseSavedVm(readFileSync(file), file);
    const devs = base.sections.filter((s) => s.name.startsWith('dev:'));
    let refusedCount = 0;
    for (let i = 0; i < 40; i++) {
      const victim = devs[rnd(devs.length)];
      const saved = edited((ss) =>
        ss.map((s) => {
          if (s.name !== victim.name) return s;
          const json = te.decode(s.data);
          // Replace one number or literal with something of another type or range.
          const tokens = [...json.matchAll(/-?\d+|true|false|null/g)];
          if (!tokens.length) return s;
          const t = tokens[rnd(tokens.length)];
          const repl = ['-1', '1e300', '"x"', 'null', '[]', '{}', '4294967296', 'true'][rnd(8)];
          const out = json.slice(0, t.index) + repl + json.slice(t.index! + t[0].length);
          return { ...s, data: new TextEncoder().encode(out) };
        }),
      );
      try {
        const vm = await openSavedVm(saved, () => {});
        await vm.close();
      } catch (e) {
        expect(e, String(e)).toBeInstanceOf(StateFileError);
        expect((e as Error).message).toMatch(new RegExp(`^${file}: device `));
        refusedCount++;
      }
    }
    expect(refusedCount).toBeGreaterThan(0);
  });

  it('refuses a RAM size other than the saved one', async () => {
    const m = await refused(edited(withConfig((c) => ({ ...c, memMiB: 128 }))));
    expect(m).toMatch(/RAM: saved with 64 MiB of RAM, this VM has 128 MiB/);
  });

  it('refuses another device list, naming the devices that differ', async () => {
    const m = await refused(edited(withConfig((c) => ({ ...c, rng: false }))));
    expect(m).toMatch(
      /its devices do not match this VM's; not in the file: .*; not in this VM: .*virtio-mmio\d:virtio-rng0/,
    );
  });

  it('resumes a file saved before the board had fw_cfg (no section for it)', async () => {
    const saved = edited((ss) => ss.filter((s) => s.name !== 'dev:fw-cfg'));
    expect(saved.sections.some((s) => s.name === 'dev:fw-cfg')).toBe(false);
    const vm = await openSavedVm(saved, () => {});
    try {
      expect(vm.fwCfg.userFiles()).toEqual(['opt/org.example/state']);
    } finally {
      await vm.close();
    }
  });

  it('refuses a device state of another version, and a CPU from another build', async () => {
    const m = await refused(
      edited((ss) =>
        ss.map((s) =>
          s.name === 'dev:plic' ? { ...s, data: encodeJson({ version: 9 }), version: 9 } : s,
        ),
      ),
    );
    expect(m).toMatch(/device plic: plic: unsupported state version 9/);
    const cpu = await refused(
      edited((ss) =>
        ss.map((s) => (s.name === 'cpu' ? { ...s, data: s.data.subarray(0, 100) } : s)),
      ),
    );
    expect(cpu).toMatch(/CPU state: a CPU state of 100 bytes/);
    const misa = await refused(
      edited((ss) =>
        ss.map((s) => {
          if (s.name !== 'cpu') return s;
          const d = s.data.slice();
          d[70 * 8] ^= 1; // misa without A
          return { ...s, data: d };
        }),
      ),
    );
    expect(misa).toMatch(/CPU state: a CPU with other extensions \(misa\)/);
  });

  it('refuses a qcow2 whose backing file changed since the save', async () => {
    const saved = await readSavedVm(file);
    const rec = saved.info.disks[1];
    expect(rec.backing?.map((b) => b.path)).toEqual([join(dir, 'base.raw')]);
    const st = statSync(rec.backing![0].path);
    utimesSync(rec.backing![0].path, st.atime, new Date(Date.now() + 60_000));
    try {
      const m = await refused(saved);
      expect(m).toMatch(
        /backing file .*base\.raw of disk .*disk\.qcow2 changed since the state was saved/,
      );
    } finally {
      utimesSync(rec.backing![0].path, st.atime, st.mtime);
    }
  });

  it('refuses a disk image that changed since the save', async () => {
    const saved = await readSavedVm(file);
    const path = saved.info.config.disks[0].path;
    utimesSync(path, new Date(), new Date(Date.now() + 60_000));
    const m = await refused(saved);
    expect(m).toMatch(/disk .*disk\.img changed since the state was saved/);
  });

  it('refuses a VM whose disk is snapshot=on, before pausing anything', async () => {
    const snap: VmConfig = { ...cfg, disks: [{ ...cfg.disks[0], snapshot: true }] };
    await expect(saveVm(first, snap, join(dir, 'x.vm'))).rejects.toThrow(/disk .* is snapshot=on/);
  });
});

describe('saving while disk requests are in flight', () => {
  let dir: string;
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('waits for them: the file holds their completions and the guest sees them after resuming', async () => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-vmstate-io-'));
    const disk = join(dir, 'slow.img');
    writeFileSync(disk, new Uint8Array(1 << 20));
    const cfg: VmConfig = {
      ...defaultVmConfig('io'),
      memMiB: 64,
      disks: [{ path: disk, format: 'raw', readOnly: false, cache: 'writeback', sched: 'noop' }],
    };
    // Every write takes 150 ms on the host, so the guest's writes are still out when we save.
    // Reads are not slowed: the device's in_flight also counts them, so the test waits for a
    // write to be out (a read alone in flight once let the save find nothing to wait for).
    const started: number[] = [];
    let writing = 0;
    const slow = (d: BlockBackend): BlockBackend => ({
      name: d.name,
      size: d.size,
      readOnly: d.readOnly,
      read: (o, b) => d.read(o, b),
      write: async (o, b) => {
        started.push(o);
        writing++;
        try {
          await new Promise((r) => setTimeout(r, 150));
          return await d.write(o, b);
        } finally {
          writing--;
        }
      },
      flush: () => d.flush(),
      discard: (o, l) => d.discard(o, l),
      writeZeroes: (o, l, u) => d.writeZeroes(o, l, u),
      close: () => d.close(),
    });
    const vm = await VirtMachine.open(cfg, () => {}, { wrapDisk: slow });
    const r = start(vm);
    await until(() => /wasmvisor:[^\r\n]*# /.test(r.out()), 60_000, 'the shell prompt');
    vm.consoleInput(
      new TextEncoder().encode(
        "printf 'blk-%.0s' $(seq 1 4000) | dd of=/dev/vda bs=4k conv=fsync 2>/dev/null; echo dd-done\r",
      ),
    );
    const inFlight = (): number => vm.stats().virtio['virtio-blk0']?.in_flight ?? 0;
    await until(() => writing > 0, 10_000, 'a disk write in flight');
    vm.pause();
    const startedBeforeSave = [...started];
    // Still out (nothing ran since the check); the device refuses to save such a state itself.
    expect(inFlight()).toBeGreaterThan(0);
    const file = join(dir, 'io.vm');
    await saveVm(vm, cfg, file);
    expect(inFlight()).toBe(0); // it waited for the slow writes
    expect(r.out()).not.toMatch(/^dd-done\r?$/m);
    vm.stop();
    await r.done;
    await vm.close();
    // What the guest wrote before the save is on the disk the file expects: every write that
    // had started (each at a 4-byte multiple inside the 16,000 bytes of 'blk-').
    const written = readFileSync(disk);
    expect(startedBeforeSave.length).toBeGreaterThan(0);
    for (const o of startedBeforeSave) {
      expect(written.subarray(o, o + 8).toString(), `offset ${o}`).toBe('blk-blk-');
    }

    const vm2 = await openSavedVm(await readSavedVm(file), () => {});
    try {
      const r2 = start(vm2);
      await until(() => /^dd-done\r?$/m.test(r2.out()), 20_000, "the guest's dd to finish");
      vm2.stop();
      await r2.done;
    } finally {
      await vm2.close();
    }
  }, 90_000);
});
