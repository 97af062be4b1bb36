/**
 * Balloon figures (issue 8): a 512 MiB guest fills and frees 400 MiB (a tmpfs file), then the
 * balloon is inflated to leave the guest 256 MiB and deflated again. For wasmvisor and for
 * `qemu-system-riscv64 -device virtio-balloon-device` on the same kernel and initramfs, in the
 * same run, it prints: inflate and deflate speed (MiB/s, polled every 25 ms through each one's
 * monitor) and the VMM process's resident memory (VmRSS) before and after inflating.
 * Our VM runs as `wasmvisor run` does by default (the JIT, passed as --jit so
 * WASMVISOR_JIT in the environment cannot change it); BALLOON_BENCH_JIT=0 passes --no-jit.
 *
 *   node dist/bench/balloon.js   (BALLOON_BENCH_JIT=0: interpreted; about a minute)
 */
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { GuestConsole } from './guest-console.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const images = join(root, 'guest', 'images');
const RAM_MIB = 512;
const TARGET_MIB = 256;
const POLL_MS = 25;
/** BALLOON_BENCH_JIT=0: our guest interprets every instruction; else it runs as VMs do by default. */
const JIT = process.env.BALLOON_BENCH_JIT !== '0';

/** What a VMM's monitor lets the bench do. */
interface BalloonMonitor {
  /** Sets the guest's memory size (QEMU's `balloon N` semantics). */
  setGuestMemory(mib: number): Promise<void>;
  /** The guest's memory as the VMM sees it now (RAM minus what the balloon holds). */
  guestMemory(): Promise<number>;
  close(): void;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** wasmvisor's monitor is on the console: Ctrl-A C enters it; we stay there while measuring. */
function wasmvisorMonitor(c: GuestConsole): BalloonMonitor {
  let inside = false;
  const enter = async (): Promise<void> => {
    if (inside) return;
    c.sendRaw(Uint8Array.of(0x01, 0x63));
    await c.expect(/\(wasmvisor\) $/, 5_000);
    inside = true;
  };
  return {
    async setGuestMemory(mib) {
      await enter();
      c.send(`balloon ${mib}`);
      await c.expect(/\(wasmvisor\) $/, 5_000);
    },
    async guestMemory() {
      await enter();
      c.send('info balloon');
      // "balloon: actual=<held> MiB ... guest memory=<left> MiB of <ram> MiB"
      const m = await c.expect(/guest memory=(\d+) MiB[\s\S]*?\(wasmvisor\) $/, 5_000);
      return Number(m[1]);
    },
    close() {},
  };
}

/** QEMU's HMP monitor on a unix socket. */
async function qemuMonitor(path: string): Promise<BalloonMonitor> {
  let sock: Socket | undefined;
  for (let i = 0; i < 100 && !sock; i++) {
    try {
      sock = await new Promise<Socket>((resolve, reject) => {
        const s = connect(path, () => resolve(s));
        s.on('error', reject);
      });
    } catch {
      await sleep(50);
    }
  }
  if (!sock) throw new Error('cannot connect to the QEMU monitor');
  let buf = '';
  sock.on('data', (d: Buffer) => (buf += d.toString('latin1')));
  const command = async (cmd: string): Promise<string> => {
    buf = '';
    sock!.write(cmd + '\n');
    for (let i = 0; i < 400; i++) {
      if (/\(qemu\) $/.test(buf) && buf.includes(cmd)) return buf;
      await sleep(5);
    }
    throw new Error(`QEMU monitor did not answer "${cmd}": ${buf.slice(-200)}`);
  };
  await sleep(100);
  return {
    async setGuestMemory(mib) {
      await command(`balloon ${mib}`);
    },
    async guestMemory() {
      const out = await command('info balloon');
      const m = /actual=(\d+)/.exec(out);
      if (!m) throw new Error(`unexpected "info balloon" reply: ${out}`);
      return Number(m[1]);
    },
    close() {
      sock!.destroy();
    },
  };
}

interface Figures {
  rssBefore: number;
  rssAfter: number;
  inflateMiBs: number;
  deflateMiBs: number;
}

/** Polls until the guest's memory reaches `mib`; returns the seconds it took. */
async function waitFor(mon: BalloonMonitor, mib: number, t0: number): Promise<number> {
  for (;;) {
    if ((await mon.guestMemory()) === mib) return (performance.now() - t0) / 1000;
    if (performance.now() - t0 > 60_000) throw new Error(`balloon never reached ${mib} MiB`);
    await sleep(POLL_MS);
  }
}

async function measure(c: GuestConsole, mon: BalloonMonitor): Promise<Figures> {
  await c.expect(/# $/, 120_000);
  // Touch 400 MiB, then free it: the pages stay resident in the host until returned.
  c.send(
    'mkdir -p /fill && mount -t tmpfs -o size=420m tmpfs /fill && ' +
      'dd if=/dev/zero of=/fill/f bs=1M count=400 2>/dev/null && rm /fill/f && umount /fill && echo FILLED',
  );
  await c.expect(/^FILLED/m, 120_000);
  await sleep(1000);
  const rssBefore = rssMiB(c.p.pid!);
  let t0 = performance.now();
  await mon.setGuestMemory(TARGET_MIB);
  const inflateS = await waitFor(mon, TARGET_MIB, t0);
  await sleep(500);
  const rssAfter = rssMiB(c.p.pid!);
  t0 = performance.now();
  await mon.setGuestMemory(RAM_MIB);
  const deflateS = await waitFor(mon, RAM_MIB, t0);
  const moved = RAM_MIB - TARGET_MIB;
  return { rssBefore, rssAfter, inflateMiBs: moved / inflateS, deflateMiBs: moved / deflateS };
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'wasmvisor-balloon-'));
  const fw = join(images, 'fw_dynamic.bin');
  const initrd = join(images, 'initramfs.cpio.gz');
  const kernel = join(tmp, 'Image');
  writeFileSync(kernel, gunzipSync(readFileSync(join(images, 'Image.gz'))));
  const rows: [string, Figures][] = [];
  try {
    const ours = new GuestConsole(process.execPath, [
      join(root, 'bin', 'wasmvisor.mjs'),
      'run',
      '--mem',
      `${RAM_MIB}M`,
      '--kernel',
      kernel,
      '--initrd',
      initrd,
      '--balloon,free-page-reporting=off',
      ...(JIT ? ['--jit'] : ['--no-jit']),
    ]);
    try {
      rows.push(['wasmvisor', await measure(ours, wasmvisorMonitor(ours))]);
    } finally {
      ours.kill();
    }
    const sockPath = join(tmp, 'qemu-monitor.sock');
    const qemu = new GuestConsole('qemu-system-riscv64', [
      ...['-M', 'virt', '-m', `${RAM_MIB}M`, '-nographic', '-bios', fw, '-kernel', kernel],
      ...['-initrd', initrd, '-append', 'console=ttyS0'],
      ...['-device', 'virtio-balloon-device', '-monitor', `unix:${sockPath},server,nowait`],
    ]);
    try {
      const mon = await qemuMonitor(sockPath);
      try {
        rows.push(['qemu-tcg', await measure(qemu, mon)]);
      } finally {
        mon.close();
      }
    } catch (e) {
      console.log(`qemu: ${(e as Error).message.split('\n')[0]}`);
    } finally {
      qemu.kill();
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  console.log(
    `\nballoon: ${RAM_MIB} MiB guest, 400 MiB touched and freed, inflate to leave ${TARGET_MIB} MiB; ` +
      `wasmvisor ${JIT ? 'with the JIT (the default)' : 'interpreted (BALLOON_BENCH_JIT=0: --no-jit)'}`,
  );
  console.log('vmm          RSS before   RSS after   inflate MiB/s   deflate MiB/s');
  for (const [name, f] of rows) {
    console.log(
      `${name.padEnd(12)} ${f.rssBefore.toFixed(0).padStart(7)} MiB ${f.rssAfter.toFixed(0).padStart(7)} MiB ` +
        `${f.inflateMiBs.toFixed(0).padStart(13)}   ${f.deflateMiBs.toFixed(0).padStart(13)}`,
    );
  }
  if (rows.length === 2) {
    const [w, q] = [rows[0]![1], rows[1]![1]];
    console.log(
      `ratio (wasmvisor/qemu): inflate ${(w.inflateMiBs / q.inflateMiBs).toFixed(2)}x, ` +
        `deflate ${(w.deflateMiBs / q.deflateMiBs).toFixed(2)}x, RSS returned ` +
        `${((w.rssBefore - w.rssAfter) / (q.rssBefore - q.rssAfter)).toFixed(2)}x`,
    );
  }
}

main().catch((e: unknown) => {
  console.error(`bench/balloon: ${(e as Error).message}`);
  process.exit(1);
});
