/**
 * Live migration in one process (migration/source.ts and destination.ts over loopback), where
 * both machines can be compared: with a downtime target too small to meet, the source sends
 * round after round while the guest rewrites an 8 MiB file, and the destination's RAM and CPU
 * state then equal the source's at its pause, byte for byte; the guest runs on there. And when
 * the destination fails after the source let go of its disks, the source's VM resumes from the
 * state it keeps.
 */
import { describe, expect, it } from 'vitest';
import { createServer, type AddressInfo } from 'node:net';
import { VirtMachine } from '../../main/vm/machine.js';
import { defaultVmConfig } from '../../main/vm/config.js';
import { InProcessGuest } from '../../bench/in-process-guest.js';
import { migrateVm, MigrationFailedAfterRelease } from '../../main/vm/migration/source.js';
import { receiveMigration } from '../../main/vm/migration/destination.js';
import { MessageReader, MessageWriter, MSG } from '../../main/vm/migration/protocol.js';
import { openMigratedVm } from '../../main/vm/vmstate/resume.js';
import { Core, vmJit } from '../../main/vm/core.js';
import { VIRT } from '../../devices/platform/memory-map.js';

async function bootedWithJob(name: string): Promise<InProcessGuest> {
  const g = new InProcessGuest(await VirtMachine.open(defaultVmConfig(name)));
  await g.expect(/~# /, 60_000);
  g.send('X=kept-$((6*7)); echo v""ar');
  await g.expect(/^var\r?$/m, 10_000);
  g.send(
    // Two 8 MiB files of 9-byte lines, one of "00000001", one of "00000002", copied in turn
    // over a third in a tmpfs: ~30 rewrites of its 2,048 pages a second.
    'mkdir -p /tmp; mount -t tmpfs tmpfs /tmp; yes 00000001 | head -c 1048572 > /tmp/a1; yes 00000002 | head -c 1048572 > /tmp/b1; for f in a b; do cat /tmp/${f}1 /tmp/${f}1 /tmp/${f}1 /tmp/${f}1 /tmp/${f}1 /tmp/${f}1 /tmp/${f}1 /tmp/${f}1 > /tmp/$f; done; (while :; do cat /tmp/a > /tmp/churn; cat /tmp/b > /tmp/churn; done) & echo j""ob',
  );
  await g.expect(/^job\r?$/m, 10_000);
  // Let it dirty a few rounds' worth first.
  await new Promise((r) => setTimeout(r, 500));
  return g;
}

describe('live migration, in one process', () => {
  it('sends round after round while the guest writes; the destination gets exactly the paused machine', async () => {
    const src = await bootedWithJob('rounds');
    let port = 0;
    let copy: { ram: Uint8Array; harts: Uint8Array[] } | undefined;
    // As the worker does: the RAM goes straight into a core made when the definition came.
    let core: Core | undefined;
    const dst = receiveMigration('tcp:127.0.0.1:0', {
      onListening: (p) => (port = p),
      ramFor: (config, bytes) => {
        core = Core.unbound(VIRT.ram.base, bytes, { jit: vmJit(config.jit) });
        return core.ram;
      },
    }).then(async (inc) => {
      expect(inc.saved.ram).toBe(core!.ram);
      const vm = await openMigratedVm(inc.saved, undefined, { core: core! });
      expect(vm.core).toBe(core); // built around it: nothing copied while paused
      copy = { ram: vm.core.ram.slice(), harts: vm.core.saveHarts().harts };
      await inc.running();
      return vm;
    });
    while (!port) await new Promise((r) => setTimeout(r, 5));
    let atPause: { ram: Uint8Array; harts: Uint8Array[] } | undefined;
    const report = await migrateVm(src.vm, defaultVmConfig('rounds'), `tcp:127.0.0.1:${port}`, {
      downtimeMs: 0.001, // never met: every round is sent, up to maxRounds
      maxRounds: 4,
      release: async () => {
        // Stopped and paused since the capture: nothing writes this RAM any more.
        atPause = { ram: src.vm.core.ram.slice(), harts: src.vm.core.saveHarts().harts };
        src.vm.stop();
        await src.done;
        await src.vm.close();
      },
    });
    const vm = await dst;
    expect(report.rounds).toHaveLength(5); // 4 while running, the last one paused
    expect(report.rounds[0]).toBe(src.vm.core.ram.length / 4096);
    // The job rewrote its file meanwhile: each later round had pages to send again.
    for (const n of report.rounds.slice(1, 4)) expect(n).toBeGreaterThan(0);
    expect(report.rounds[1]).toBeGreaterThan(1000); // the first round took long: much was rewritten
    expect(Buffer.compare(copy!.ram, atPause!.ram)).toBe(0);
    // Every slot of every hart but the guest clock (cpu/snapshot.ts S_CLINT + 2: the time now,
    // which runs on at the destination from where the source's stopped).
    const MTIME_SLOT = 115;
    const noClock = (harts: Uint8Array[]): string[] =>
      harts.map((h) => {
        const b = Buffer.from(h);
        b.writeBigUInt64LE(0n, MTIME_SLOT * 8);
        return b.toString('hex');
      });
    expect(noClock(copy!.harts)).toEqual(noClock(atPause!.harts));
    const g = new InProcessGuest(vm);
    g.send("echo got-$X; kill %1; sleep 1; echo lines-$(sed '$d' /tmp/churn | sort -u | wc -l)");
    await g.expect(/got-kept-42\s+lines-[01]\b/, 30_000);
    g.vm.stop();
    await g.done;
    await g.vm.close();
  }, 120_000);

  it('a destination that fails after the release: the source resumes the VM from its state', async () => {
    const src = await bootedWithJob('fallback');
    // A destination that takes everything, then says it could not start.
    const server = createServer((s) => {
      const r = new MessageReader(s);
      const w = new MessageWriter(s);
      void (async () => {
        for (;;) {
          const m = await r.next();
          if (m.type === MSG.final) await w.send(MSG.ready);
          if (m.type === MSG.released) {
            await w.sendJson(MSG.error, { message: 'no room for it here' });
            s.end();
            return;
          }
        }
      })().catch(() => {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    let failure: unknown;
    try {
      await migrateVm(src.vm, defaultVmConfig('fallback'), `tcp:127.0.0.1:${port}`, {
        release: async () => {
          src.vm.stop();
          await src.done;
          await src.vm.close();
        },
      });
    } catch (e) {
      failure = e;
    }
    server.close();
    expect(failure).toBeInstanceOf(MigrationFailedAfterRelease);
    expect((failure as Error).message).toBe('no room for it here');
    const vm = await openMigratedVm((failure as MigrationFailedAfterRelease).fallback);
    const g = new InProcessGuest(vm);
    g.send('echo back-$X; n=$(wc -c < /tmp/churn); echo size-ok');
    await g.expect(/back-kept-42\s+size-ok/, 30_000);
    g.vm.stop();
    await g.done;
    await g.vm.close();
  }, 120_000);
});
