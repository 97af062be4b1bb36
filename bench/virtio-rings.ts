/**
 * Split against packed virtqueues (VIRTIO_F_RING_PACKED), in wasmvisor and in QEMU TCG, on the
 * bundled kernel: the same guest with a virtio-blk disk and a virtio-net (both on virtio-mmio,
 * net=user) boots once per ring layout, alternately, ROUNDS times (default 3), and in each boot
 *   - uploads BYTES to the host with `nc 10.0.2.2 PORT -e dd if=/dev/zero bs=64k` (as
 *     bench/net.ts), timed on the host from accepting the connection to its end;
 *   - downloads as many from the host (`nc … -e dd of=/dev/null bs=64k iflag=fullblock`: the
 *     receive queue, in 64 KiB TSO frames from the NAT), timed from accepting to the guest's FIN,
 *     dd's report checked for every block;
 *   - reads the 64 MiB disk with `dd bs=64k` after dropping the page cache, timed on the host
 *     from typing the command to its end marker.
 * wasmvisor's columns also give the device's MMIO exits and interrupts per MB (its virtio-mmio
 * slot and PLIC line), which is where the layouts differ: a packed ring's driver and device
 * each poll one place (the next descriptor) and notify through event suppression structures
 * instead of avail/used indices. QEMU (`-device virtio-*-device,packed=on|off`, on modern
 * virtio-mmio: `-global virtio-mmio.force-legacy=false`) is the
 * reference for what the layout changes on a mature implementation. Each boot checks in sysfs
 * that both drivers took the layout asked for. Figures are medians of the rounds; ratios are
 * packed ÷ split (throughput: above 1, packed is faster).
 *
 *   node dist/bench/virtio-rings.js [ROUNDS]   (RINGS_BENCH_MB=N uploads N MB, default 128;
 *   RINGS_BENCH_QEMU=0 leaves QEMU out)
 */
import { createServer, type AddressInfo, type Server } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtMachine } from '../main/vm/machine.js';
import { defaultVmConfig, type VmConfig } from '../main/vm/config.js';
import { VIRT } from '../devices/platform/memory-map.js';
import { GuestConsole } from './guest-console.js';
import { InProcessGuest } from './in-process-guest.js';
import { QEMU, qemuVersion, qemuVirtArgs, unpackKernel } from './qemu-virt.js';

const ROUNDS = Math.max(1, Number(process.argv[2] ?? 3) || 3);
const UPLOAD_MB = Math.max(1, Number(process.env.RINGS_BENCH_MB ?? 128) || 128);
const BLOCKS = Math.round((UPLOAD_MB * 1e6) / 65536);
const BYTES = BLOCKS * 65536;
const DISK_BYTES = 64 << 20;
const WITH_QEMU = process.env.RINGS_BENCH_QEMU !== '0';

interface Shell {
  send(line: string): void;
  expect(re: RegExp, ms: number): Promise<RegExpExecArray>;
}

/** One boot's figures. */
interface Run {
  upMBs: number;
  downMBs: number;
  readMBs: number;
  /** wasmvisor only: per MB moved, for the NIC during the upload and the disk during the read. */
  netExitsPerMB?: number;
  netIrqsPerMB?: number;
  rxExitsPerMB?: number;
  rxIrqsPerMB?: number;
  blkExitsPerMB?: number;
  blkIrqsPerMB?: number;
}

/** Accepts one connection at a time and counts its bytes. */
class Sink {
  readonly server: Server = createServer();
  private waiter?: (r: { bytes: number; s: number }) => void;
  onAccept?: () => void;

  async listen(): Promise<number> {
    this.server.on('connection', (c) => {
      const t0 = performance.now();
      this.onAccept?.();
      let bytes = 0;
      c.on('data', (d: Buffer) => (bytes += d.length));
      c.on('end', () => {
        c.destroy();
        this.waiter?.({ bytes, s: (performance.now() - t0) / 1000 });
      });
      c.on('error', () => {});
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return (this.server.address() as AddressInfo).port;
  }

  next(): Promise<{ bytes: number; s: number }> {
    return new Promise((r) => (this.waiter = r));
  }
}

/** Sends BYTES to whoever connects, then waits for the guest to close. */
class Source {
  readonly server: Server = createServer({ allowHalfOpen: true });
  private static readonly chunk = Buffer.alloc(65536, 0x5a);
  onAccept?: () => void;

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return (this.server.address() as AddressInfo).port;
  }

  next(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('connection', (c) => {
        const t0 = performance.now();
        this.onAccept?.();
        let left = BLOCKS;
        const pump = (): void => {
          while (left > 0) {
            left--;
            if (!c.write(Source.chunk)) return void c.once('drain', pump);
          }
          c.end();
        };
        pump();
        c.on('data', () => {});
        c.on('error', reject);
        c.on('end', () => {
          c.destroy();
          if (left > 0) reject(new Error(`the guest closed with ${left} blocks unsent`));
          else resolve((performance.now() - t0) / 1000);
        });
      });
    });
  }
}

let marks = 0;
/** Types `cmd` and waits for its end marker (the marker is split so the echo does not match). */
async function sh(g: Shell, cmd: string, ms = 120_000): Promise<void> {
  const m = `M${++marks}K`;
  g.send(`${cmd}; echo ${m.slice(0, 2)}""${m.slice(2)}`);
  await g.expect(new RegExp(`^${m}\\r?$`, 'm'), ms);
}

/** Checks that both drivers took the layout asked for (feature bit 34 in sysfs). */
async function checkLayout(g: Shell, packed: boolean): Promise<void> {
  g.send('echo "L""AYOUT $(cut -c35 /sys/bus/virtio/devices/*/features | tr -d "\\n")"');
  const m = await g.expect(/^LAYOUT ([01]+)\r?$/m, 10_000);
  if (m[1] !== (packed ? '11' : '00')) {
    throw new Error(`asked for ${packed ? 'packed' : 'split'} rings, the drivers took ${m[1]}`);
  }
}

async function upload(g: Shell, sink: Sink, port: number): Promise<number> {
  const got = sink.next();
  g.send(`nc 10.0.2.2 ${port} -e dd if=/dev/zero bs=65536 count=${BLOCKS} 2>/dev/null`);
  const r = await got;
  if (r.bytes !== BYTES) throw new Error(`the host received ${r.bytes} bytes of ${BYTES}`);
  return r.s;
}

async function download(g: Shell, source: Source, port: number): Promise<number> {
  const done = source.next();
  await sh(
    g,
    `nc 10.0.2.2 ${port} -e dd of=/dev/null bs=65536 iflag=fullblock 2>/tmp/dl.log`,
    300_000,
  );
  const s = await done;
  g.send('sed -n "s/ records in/ R""ECORDS/p" /tmp/dl.log');
  const m = await g.expect(/(\d+)\+(\d+) RECORDS/, 10_000);
  if (Number(m[1]) !== BLOCKS || m[2] !== '0') {
    throw new Error(`the guest read ${m[1]}+${m[2]} blocks of ${BLOCKS}`);
  }
  return s;
}

async function diskRead(g: Shell): Promise<number> {
  await sh(g, 'sync; echo 3 > /proc/sys/vm/drop_caches');
  const t0 = performance.now();
  await sh(g, `dd if=/dev/vda of=/dev/null bs=65536 count=${DISK_BYTES / 65536} 2>/dev/null`);
  return (performance.now() - t0) / 1000;
}

/** Where the guests send to and download from. */
interface Host {
  sink: Sink;
  sinkPort: number;
  source: Source;
  sourcePort: number;
}

async function ours(packed: boolean, disk: string, host: Host): Promise<Run> {
  const { sink, source } = host;
  const cfg: VmConfig = {
    ...defaultVmConfig(`rings-${packed ? 'packed' : 'split'}`),
    disks: [{ path: disk, format: 'raw', readOnly: true, cache: 'writeback', sched: 'noop' }],
    nics: [{ model: 'virtio', net: 'user' }],
    ...(packed ? { virtioPacked: true } : {}),
  };
  const g = new InProcessGuest(await VirtMachine.open(cfg));
  try {
    await g.expect(/~# /, 120_000);
    await checkLayout(g, packed);
    await sh(g, 'ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up');
    const vm = g.vm;
    const slotOf = (name: string): number => vm.virtio.findIndex((t) => t.device?.name === name);
    const probe = (name: string) => {
      const irq = `plic:${VIRT.virtio.firstIrq + slotOf(name)}`;
      return (): [number, number] => {
        const s = vm.stats();
        const e = s.exits[name] ?? { reads: 0, writes: 0 };
        return [e.reads + e.writes, s.interrupts[irq] ?? 0];
      };
    };
    const net = probe('virtio-net0');
    const blk = probe('virtio-blk0');
    let n0: [number, number] = [0, 0];
    sink.onAccept = () => (n0 = net());
    const upS = await upload(g, sink, host.sinkPort);
    const n1 = net();
    let r0: [number, number] = [0, 0];
    source.onAccept = () => (r0 = net());
    const downS = await download(g, source, host.sourcePort);
    const r1 = net();
    const b0 = blk();
    const readS = await diskRead(g);
    const b1 = blk();
    const upMB = BYTES / 1e6;
    const readMB = DISK_BYTES / 1e6;
    return {
      upMBs: upMB / upS,
      downMBs: upMB / downS,
      readMBs: readMB / readS,
      netExitsPerMB: (n1[0] - n0[0]) / upMB,
      netIrqsPerMB: (n1[1] - n0[1]) / upMB,
      rxExitsPerMB: (r1[0] - r0[0]) / upMB,
      rxIrqsPerMB: (r1[1] - r0[1]) / upMB,
      blkExitsPerMB: (b1[0] - b0[0]) / readMB,
      blkIrqsPerMB: (b1[1] - b0[1]) / readMB,
    };
  } finally {
    sink.onAccept = undefined;
    source.onAccept = undefined;
    g.vm.stop();
    await g.done;
    await g.vm.close();
  }
}

async function qemu(packed: boolean, kernel: string, disk: string, host: Host): Promise<Run> {
  const p = `packed=${packed ? 'on' : 'off'}`;
  // QEMU's virtio-mmio is legacy (virtio 0.9.5) unless told otherwise, and a legacy device
  // cannot offer packed rings: both layouts run on the modern interface, as ours.
  const extra = [
    '-global', 'virtio-mmio.force-legacy=false',
    '-netdev', 'user,id=n0', '-device', `virtio-net-device,netdev=n0,${p}`,
    '-drive', `file=${disk},if=none,format=raw,readonly=on,id=d0`,
    '-device', `virtio-blk-device,drive=d0,${p}`,
  ]; // prettier-ignore
  const q = new GuestConsole(QEMU, qemuVirtArgs({ kernel, extra }));
  try {
    await q.expect(/~# /, 180_000);
    await checkLayout(q, packed);
    await sh(q, 'ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up');
    const upS = await upload(q, host.sink, host.sinkPort);
    const downS = await download(q, host.source, host.sourcePort);
    const readS = await diskRead(q);
    return {
      upMBs: BYTES / 1e6 / upS,
      downMBs: BYTES / 1e6 / downS,
      readMBs: DISK_BYTES / 1e6 / readS,
    };
  } finally {
    q.kill();
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function fmt(v: number | undefined, digits = 1): string {
  return v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(digits);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wasmvisor-rings-'));
  const sink = new Sink();
  const source = new Source();
  try {
    const disk = join(dir, 'disk.img');
    const bytes = Buffer.alloc(DISK_BYTES);
    for (let i = 0; i < DISK_BYTES; i += 4096) bytes.writeUInt32LE(i, i);
    writeFileSync(disk, bytes);
    const host: Host = {
      sink,
      sinkPort: await sink.listen(),
      source,
      sourcePort: await source.listen(),
    };
    const version = WITH_QEMU ? qemuVersion() : undefined;
    const kernel = version ? unpackKernel(dir) : undefined;
    console.log(
      `split vs packed virtqueues: upload and download ${UPLOAD_MB} MB over virtio-net (net=user), read ` +
        `${DISK_BYTES >> 20} MiB from virtio-blk; ${ROUNDS} boots per column, alternately; ` +
        `wasmvisor with its default JIT; ${version ?? 'QEMU: not run'}`,
    );
    const runs: Record<string, Run[]> = {
      'wasmvisor split': [],
      'wasmvisor packed': [],
      'QEMU split': [],
      'QEMU packed': [],
    };
    for (let r = 0; r < ROUNDS; r++) {
      for (const packed of [false, true]) {
        const name = `wasmvisor ${packed ? 'packed' : 'split'}`;
        runs[name]!.push(await ours(packed, disk, host));
        process.stdout.write('.');
        if (kernel) {
          runs[`QEMU ${packed ? 'packed' : 'split'}`]!.push(await qemu(packed, kernel, disk, host));
          process.stdout.write('.');
        }
      }
    }
    process.stdout.write('\n');
    const med = (col: string, k: keyof Run): number | undefined =>
      runs[col]!.length
        ? median(runs[col]!.map((x) => x[k]!).filter((x) => x !== undefined))
        : undefined;
    const rows: [string, keyof Run, number][] = [
      ['virtio-net upload, MB/s', 'upMBs', 1],
      ['  MMIO exits per MB', 'netExitsPerMB', 1],
      ['  interrupts per MB', 'netIrqsPerMB', 2],
      ['virtio-net download, MB/s', 'downMBs', 1],
      ['  MMIO exits per MB', 'rxExitsPerMB', 1],
      ['  interrupts per MB', 'rxIrqsPerMB', 2],
      ['virtio-blk read, MB/s', 'readMBs', 1],
      ['  MMIO exits per MB', 'blkExitsPerMB', 1],
      ['  interrupts per MB', 'blkIrqsPerMB', 2],
    ];
    const head = [
      '',
      'ours split',
      'ours packed',
      'packed/split',
      'QEMU split',
      'QEMU packed',
      'packed/split',
    ];
    const lines = rows.map(([label, k, d]) => {
      const os = med('wasmvisor split', k);
      const op = med('wasmvisor packed', k);
      const qs = med('QEMU split', k);
      const qp = med('QEMU packed', k);
      const ratio = (a?: number, b?: number) =>
        a === undefined || b === undefined || !b ? '—' : `${(a / b).toFixed(2)}x`;
      return [label, fmt(os, d), fmt(op, d), ratio(op, os), fmt(qs, d), fmt(qp, d), ratio(qp, qs)];
    });
    const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
    const out = (cells: string[]) =>
      console.log(
        cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '),
      );
    out(head);
    for (const l of lines) out(l);
  } finally {
    sink.server.close();
    source.server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
