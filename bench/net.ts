/**
 * Emulation vs paravirtualization on the wire: the same TCP transfer over an emulated e1000
 * (PCIe), over virtio-net (virtio-mmio) and, in the user rows, over virtio-net on PCIe
 * (virtio-pci, INTx; QEMU: virtio-net-pci without legacy or MSI-X vectors), in wasmvisor and in
 * `qemu-system-riscv64 -M virt` (TCG), on the same kernel and initramfs (bench/qemu-virt.ts).
 *
 * The transfer is what the issue's QEMU figures were taken with: busybox `nc` connects and runs
 * `dd if=/dev/zero bs=64k count=N` on the socket (`nc … -e dd`), so dd writes 64 KiB per system
 * call straight into TCP.
 *
 *   - guest → host over user networking (the table's main rows): one VM per NIC model with
 *     `net=user` (wasmvisor's NAT; QEMU's `-netdev user`), guest 10.0.2.15 sends to 10.0.2.2,
 *     which both NATs map to the host's loopback, where this process listens and counts bytes.
 *     Throughput is taken on the host, from accepting the connection to its end.
 *   - host → guest over user networking (a download): the same VMs; the guest runs
 *     `nc 10.0.2.2 PORT -e dd of=/dev/null bs=64k`, this process writes BYTES on accepting the
 *     connection and closes it. Throughput is taken on the host, from accepting to the guest's
 *     FIN (dd saw our FIN after the last byte and exited), and the guest's dd must report every
 *     byte. This is where the NAT's large segments (GSO towards a virtio-net that negotiated
 *     GUEST_TSO4) show.
 *   - guest A → guest B over `switch:NAME` (wasmvisor only: QEMU cannot join our switch): two
 *     VMs of this process, B runs `nc -l -e dd of=/dev/null`. Timed from typing the command to
 *     both ends' markers. A last line repeats a quarter of the transfer with dd piped into nc,
 *     which writes a few KiB per system call: how well small writes are merged into large
 *     segments (TCP autocorking, which needs transmissions to complete after the kick).
 *
 * Exits, interrupts and guest instructions (wasmvisor only), over the same interval as the
 * throughput:
 *   - MMIO exits/s: bus reads + writes of the NIC's own regions (e1000, virtio-pci: its BARs;
 *     virtio-net: its virtio-mmio slot), in every guest of the row together;
 *   - interrupts/s: PLIC injections of the NIC's source (e1000, virtio-pci: its INTx line;
 *     virtio-net: its slot's line);
 *   - per MB: exits, interrupts and guest instructions (every guest of the row) per MB moved
 *     (1 MB = 1e6 bytes), independent of host speed: the guests are CPU-bound on the
 *     interpreter or JIT, so instructions per MB is what a device model's efficiency changes.
 * Our guests run as a VM does by default (hot code translated: the JIT); NET_BENCH_JIT=0
 * interprets every instruction.
 * VMs run in this process (VirtMachine), so the two guests of the switch row take turns on one
 * host core, and the user rows' NAT and host socket share it with the guest.
 *
 * Where a MB's host time goes (wasmvisor only; MachineStats.hostTime with timeDevices on): host CPU
 * ms per MB split into the guest's own code (time inside the core's slices, less the MMIO exits),
 * the device models those exits run synchronously (bus, NIC registers, and for virtio-net the
 * ring walk and transmit that a queue notify starts), and the rest of this thread's CPU (back end,
 * host sockets, completions, the bench's own socket ends). Slices are timed in process CPU time,
 * exits (microseconds each) by the wall clock; on a busy machine the split is approximate.
 *
 * MB per host CPU second (both columns): the bytes moved per second of host CPU the emulator
 * used over the transfer (this process; QEMU's threads from /proc/PID/task/*\/schedstat). On a
 * busy machine wall-clock MB/s drop with the CPU share the emulator gets; this figure does not.
 */
import { childCpuSeconds } from './proc-cpu.js';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtMachine, type MachineStats } from '../main/vm/machine.js';
import { defaultVmConfig, type NicModel } from '../main/vm/config.js';
import { PciHost } from '../devices/pci/host.js';
import { VIRT } from '../devices/platform/memory-map.js';
import { InProcessGuest as Guest } from './in-process-guest.js';
import { GuestConsole } from './guest-console.js';
import { QEMU, qemuVersion, qemuVirtArgs, unpackKernel } from './qemu-virt.js';

const BLOCK = 64 * 1024;
const COUNT = Number(process.env.NET_BENCH_BLOCKS ?? 512); // 32 MiB per run
const BYTES = BLOCK * COUNT;
const MB = BYTES / 1e6;
/** NET_BENCH_ONLY=user or =switch runs only those rows (a shorter run while working). */
const ONLY = process.env.NET_BENCH_ONLY;
/** NET_BENCH_JIT=0: our guests interpret every instruction; else they run as VMs do by default. */
const JIT = process.env.NET_BENCH_JIT !== '0';
/** The user rows compare all three; the switch rows the two transports of old. */
const MODELS: readonly NicModel[] = ['e1000', 'virtio', 'virtio-pci'];
const SWITCH_MODELS: readonly NicModel[] = ['e1000', 'virtio'];
const QEMU_DEVICE: Record<NicModel, string> = {
  e1000: 'e1000', // on the virt board's PCIe bus, as ours
  virtio: 'virtio-net-device', // virtio-mmio, as ours
  'virtio-pci': 'virtio-net-pci,disable-legacy=on,vectors=0', // modern-only, INTx, as ours
};
/** What the guest types to send: nc runs dd on the connected socket. */
const sendCmd = (host: string, port: number): string =>
  `nc ${host} ${port} -e dd if=/dev/zero bs=${BLOCK} count=${COUNT} 2>/dev/null`;
/**
 * What the guest types to download: dd reads the socket in whole blocks (busybox dd prints no
 * byte count, but with fullblock "N+0 records in" says every byte came); its report goes to a file.
 */
const recvCmd = (host: string, port: number): string =>
  `nc ${host} ${port} -e dd of=/dev/null bs=${BLOCK} iflag=fullblock 2>/tmp/dl.log`;

/** A guest's console, in process (InProcessGuest) or on a child process (GuestConsole). */
interface Shell {
  send(line: string): void;
  expect(re: RegExp, ms: number): Promise<RegExpExecArray>;
}

/** Types `cmd` and waits for its marker; the marker is split by "" so the echo does not match. */
async function sh(g: Shell, cmd: string, ms = 30_000): Promise<void> {
  const tag = `M${Math.random().toString(36).slice(2, 8)}`;
  const sep = cmd.trimEnd().endsWith('&') ? ' ' : '; ';
  g.send(`${cmd}${sep}echo ${tag.slice(0, 1)}""${tag.slice(1)}`);
  await g.expect(new RegExp(tag), ms);
}

// ---- exits and interrupts ---------------------------------------------------------------------

/** Where to read a NIC's exits (bus region names) and interrupts (PLIC source) in stats(). */
interface NicProbe {
  vm: VirtMachine;
  regions: string[];
  irq: number;
}

function probeOf(vm: VirtMachine, model: NicModel): NicProbe {
  const nic = vm.nics.find((n) => n.model === model)!;
  if (model === 'e1000' || model === 'virtio-pci') {
    const f = vm.pci.functions().find((x) => x.fn.name === nic.name)!;
    return { vm, regions: [nic.name, `${nic.name}.io`], irq: PciHost.irqOf(f.slot, 1) };
  }
  const slot = vm.virtio.findIndex((t) => t.name === nic.name);
  return { vm, regions: [nic.name], irq: VIRT.virtio.firstIrq + slot };
}

interface Counts {
  exits: number;
  irqs: number;
  /** Guest instructions retired. */
  insns: number;
  /** Host CPU seconds used so far. */
  cpuS?: number;
  /** CPU ms over the VMs' slices, and wall ms inside their MMIO exits (MachineStats.hostTime). */
  runMs?: number;
  deviceMs?: number;
}

/** CPU seconds this process (every thread) has used. */
function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Counters of a process we can only see from outside (QEMU): its CPU time. */
const outside = (pid: number | undefined): Counts => ({
  exits: 0,
  irqs: 0,
  insns: -1,
  cpuS: childCpuSeconds(pid),
});

function count(probes: readonly NicProbe[]): Counts {
  const c: Counts = { exits: 0, irqs: 0, insns: 0, cpuS: ownCpuSeconds(), runMs: 0, deviceMs: 0 };
  for (const p of probes) {
    const s: MachineStats = p.vm.stats();
    c.insns += Number(s.instret);
    c.runMs! += s.hostTime?.runCpuMs ?? NaN;
    c.deviceMs! += s.hostTime?.deviceMs ?? NaN;
    for (const r of p.regions) c.exits += (s.exits[r]?.reads ?? 0) + (s.exits[r]?.writes ?? 0);
    c.irqs += s.interrupts[`plic:${p.irq}`] ?? 0;
  }
  return c;
}

// ---- figures ----------------------------------------------------------------------------------

interface Figures {
  mb: number;
  mbps: number;
  seconds: number;
  /** Switch rows: throughput when the guest pipes dd into nc (small writes, see switchRows). */
  pipeMbps?: number;
  /** Host CPU time over the transfer (this process, or QEMU's threads), when readable. */
  cpuS?: number;
  /** wasmvisor only. */
  exits?: number;
  irqs?: number;
  insns?: number;
  /** wasmvisor only: host ms in the guests' slices, and of them in MMIO exits (device models). */
  runMs?: number;
  deviceMs?: number;
}

function figures(mb: number, seconds: number, before?: Counts, after?: Counts): Figures {
  const f: Figures = { mb, mbps: mb / seconds, seconds };
  if (before?.cpuS !== undefined && after?.cpuS !== undefined) f.cpuS = after.cpuS - before.cpuS;
  if (before && after && before.insns >= 0) {
    f.exits = after.exits - before.exits;
    f.irqs = after.irqs - before.irqs;
    f.insns = after.insns - before.insns;
    if (after.runMs !== undefined && before.runMs !== undefined)
      f.runMs = after.runMs - before.runMs;
    if (after.deviceMs !== undefined && before.deviceMs !== undefined) {
      f.deviceMs = after.deviceMs - before.deviceMs;
    }
  }
  return f;
}

// ---- guest → host -----------------------------------------------------------------------------

/**
 * A TCP listener on the host's loopback that counts what one connection sends: resolves with
 * the bytes and the seconds from accepting to the end, calling `onAccept`/`onEnd` right then
 * (in-process guests sample their counters there).
 */
class HostSink {
  private readonly server: Server = createServer();

  static async open(): Promise<HostSink> {
    const s = new HostSink();
    await new Promise<void>((r) => s.server.listen(0, '127.0.0.1', r));
    return s;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  next(hooks: { onAccept?(): void; onEnd?(): void } = {}): Promise<{ bytes: number; s: number }> {
    return new Promise((resolve, reject) => {
      this.server.once('connection', (c) => {
        const t0 = performance.now();
        hooks.onAccept?.();
        let bytes = 0;
        c.on('data', (d: Buffer) => (bytes += d.length));
        c.on('error', reject);
        c.on('end', () => {
          const s = (performance.now() - t0) / 1000;
          hooks.onEnd?.();
          c.destroy();
          resolve({ bytes, s });
        });
      });
    });
  }

  close(): void {
    this.server.close();
  }
}

/**
 * A TCP listener on the host's loopback that writes BYTES to one connection and closes it:
 * resolves with the seconds from accepting to the guest's FIN, calling `onAccept`/`onEnd`
 * right then. Writes follow the socket's backpressure (the NAT pauses the socket when the
 * guest does not read), so the bytes in flight are what the NAT's buffers hold.
 */
class HostSource {
  private readonly server: Server = createServer({ allowHalfOpen: true });
  private static readonly chunk = Buffer.alloc(BLOCK, 0x5a);

  static async open(): Promise<HostSource> {
    const s = new HostSource();
    await new Promise<void>((r) => s.server.listen(0, '127.0.0.1', r));
    return s;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  next(hooks: { onAccept?(): void; onEnd?(): void } = {}): Promise<{ s: number }> {
    return new Promise((resolve, reject) => {
      this.server.once('connection', (c) => {
        const t0 = performance.now();
        hooks.onAccept?.();
        let left = COUNT;
        const pump = (): void => {
          while (left > 0) {
            left--;
            if (!c.write(HostSource.chunk)) return void c.once('drain', pump);
          }
          c.end();
        };
        pump();
        c.on('data', () => {});
        c.on('error', reject);
        c.on('end', () => {
          const s = (performance.now() - t0) / 1000;
          hooks.onEnd?.();
          c.destroy();
          if (left > 0) reject(new Error(`the guest closed with ${left} blocks unsent`));
          else resolve({ s });
        });
      });
    });
  }

  close(): void {
    this.server.close();
  }
}

interface Hooks {
  onAccept?(): void;
  onEnd?(): void;
}

/** Configures eth0 as 10.0.2.15 (once per guest). */
async function configure(g: Shell): Promise<void> {
  await sh(g, 'ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up');
}

/** Sends BYTES to the host sink, checks they all arrived. */
async function toHost(g: Shell, sink: HostSink, hooks?: Hooks): Promise<number> {
  const got = sink.next(hooks);
  g.send(sendCmd('10.0.2.2', sink.port));
  const r = await withTimeout(got, 300_000, 'the host received no complete transfer');
  if (r.bytes !== BYTES) throw new Error(`the host received ${r.bytes} bytes of ${BYTES}`);
  return r.s;
}

/** The guest downloads BYTES from the host source; its dd must have read them all. */
async function fromHost(g: Shell, source: HostSource, hooks?: Hooks): Promise<number> {
  const done = source.next(hooks);
  await sh(g, recvCmd('10.0.2.2', source.port), 300_000);
  const r = await withTimeout(done, 10_000, 'the guest did not close the download');
  g.send('sed -n "s/ records in/ R""ECORDS/p" /tmp/dl.log');
  const m = await g.expect(/(\d+)\+(\d+) RECORDS/, 10_000);
  if (Number(m[1]) !== COUNT || m[2] !== '0') {
    throw new Error(`the guest read ${m[1]}+${m[2]} blocks of ${COUNT}`);
  }
  return r.s;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, rej) => {
    t = setTimeout(() => rej(new Error(`${what} within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

/** Upload and download figures of one NIC model over user networking. */
interface UserRows {
  up: Figures;
  down: Figures;
}

/** Samples `sample()` at accept and at the end of one transfer. */
function sampler(sample: () => Counts) {
  const box: { before?: Counts; after?: Counts } = {};
  const hooks: Hooks = {
    onAccept: () => (box.before = sample()),
    onEnd: () => (box.after = sample()),
  };
  return { hooks, figures: (s: number) => figures(MB, s, box.before, box.after) };
}

async function wasmvisorUser(
  model: NicModel,
  sink: HostSink,
  source: HostSource,
): Promise<UserRows> {
  const cfg = { ...defaultVmConfig(`net-${model}`), nics: [{ model, net: 'user' }], jit: JIT };
  const g = new Guest(await VirtMachine.open(cfg));
  g.vm.timeDevices = true;
  try {
    await g.expect(/~# /, 120_000);
    await configure(g);
    const probes = [probeOf(g.vm, model)];
    const up = sampler(() => count(probes));
    const upS = await toHost(g, sink, up.hooks);
    const down = sampler(() => count(probes));
    const downS = await fromHost(g, source, down.hooks);
    return { up: up.figures(upS), down: down.figures(downS) };
  } finally {
    g.vm.stop();
    await g.done;
    await g.vm.close();
  }
}

async function qemuUser(
  model: NicModel,
  kernel: string,
  sink: HostSink,
  source: HostSource,
): Promise<UserRows> {
  const extra = ['-netdev', 'user,id=n0', '-device', `${QEMU_DEVICE[model]},netdev=n0`];
  const q = new GuestConsole(QEMU, qemuVirtArgs({ kernel, extra }));
  try {
    await q.expect(/~# /, 180_000);
    await configure(q);
    const up = sampler(() => outside(q.p.pid));
    const upS = await toHost(q, sink, up.hooks);
    const down = sampler(() => outside(q.p.pid));
    const downS = await fromHost(q, source, down.hooks);
    return { up: up.figures(upS), down: down.figures(downS) };
  } finally {
    q.kill();
  }
}

// ---- guest → guest over a switch --------------------------------------------------------------

const macOf = (model: NicModel, vm: number): string =>
  `52:54:00:00:0${model === 'e1000' ? 1 : 2}:0${vm}`;
const subnet = (model: NicModel): string => (model === 'e1000' ? '10.0.1' : '10.0.2');

async function switchRows(): Promise<Partial<Record<NicModel, Figures>>> {
  const guests: Guest[] = [];
  try {
    for (const i of [1, 2]) {
      const nics = SWITCH_MODELS.map((model) => ({
        model,
        net: `switch:bench-${model}`,
        mac: macOf(model, i),
      }));
      const vm = await VirtMachine.open({ ...defaultVmConfig(`bench${i}`), nics, jit: JIT });
      vm.timeDevices = true;
      guests.push(new Guest(vm));
    }
    const [a, b] = guests;
    for (const g of guests) await g.expect(/~# /, 120_000);
    for (const [i, g] of guests.entries()) {
      for (const model of SWITCH_MODELS) {
        // Find the interface by its MAC (probe order decides eth0/eth1).
        await sh(
          g,
          `for d in /sys/class/net/eth*; do [ "$(cat $d/address)" = ${macOf(model, i + 1)} ] && ` +
            `ip addr add ${subnet(model)}.${i + 1}/24 dev \${d##*/} && ip link set \${d##*/} up; done`,
        );
      }
    }
    const out: Partial<Record<NicModel, Figures>> = {};
    for (const model of SWITCH_MODELS) {
      await sh(a, `ping -c 1 -W 5 ${subnet(model)}.2 >/dev/null`);
      const peer = `${subnet(model)}.2`;
      const port = 5000 + SWITCH_MODELS.indexOf(model);
      const transfer = async (send: string, bytes: number): Promise<Figures> => {
        const rxName = b.vm.nics.find((n) => n.model === model)!.name;
        const rxBytes = (): number => b.vm.stats().nics?.[rxName]?.net_rx_bytes ?? 0;
        await sh(b, `(nc -l -p ${port} -e dd of=/dev/null bs=${BLOCK} 2>/dev/null; echo R""X) &`);
        await new Promise((r) => setTimeout(r, 300));
        const probes = [probeOf(a.vm, model), probeOf(b.vm, model)];
        const rx0 = rxBytes();
        const before = count(probes);
        const t0 = performance.now();
        await Promise.all([sh(a, send, 300_000), b.expect(/RX/, 300_000)]);
        const seconds = (performance.now() - t0) / 1000;
        // The payload must really have crossed this NIC (frames include headers: more than it).
        if (rxBytes() - rx0 < bytes) {
          throw new Error(`${model}: B's NIC received ${rxBytes() - rx0} bytes, less than sent`);
        }
        return figures(bytes / 1e6, seconds, before, count(probes));
      };
      const f = await transfer(sendCmd(peer, port), BYTES);
      // The same through a pipe: nc writes what it reads from the pipe, a few KiB at a time.
      const pipeCount = Math.max(1, COUNT >> 2);
      const pipe = `dd if=/dev/zero bs=${BLOCK} count=${pipeCount} 2>/dev/null | nc ${peer} ${port}`;
      f.pipeMbps = (await transfer(pipe, pipeCount * BLOCK)).mbps;
      out[model] = f;
    }
    return out;
  } finally {
    for (const g of guests) g.vm.stop();
    await Promise.all(guests.map((g) => g.done));
    for (const g of guests) await g.vm.close();
  }
}

// ---- the table --------------------------------------------------------------------------------

const num = (x: number | undefined, d = 0): string =>
  (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d)).padStart(12);
const ratio = (a: number | undefined, b: number | undefined): string =>
  (a === undefined || b === undefined || !b ? '-' : `${(a / b).toFixed(2)}x`).padStart(14);

function table(title: string, rows: Partial<Record<NicModel, Figures>>): void {
  const { e1000: e, virtio: v, 'virtio-pci': p } = rows;
  if (!e || !v) return;
  console.log('');
  console.log(title);
  console.log(
    'figure                       e1000  virtio-net  virtio/e1000' + (p ? '  virtio-pci' : ''),
  );
  const line = (label: string, f: (x: Figures) => number | undefined, d = 0): void =>
    console.log(
      `${label.padEnd(20)}${num(f(e), d)}${num(f(v), d)}${ratio(f(v), f(e))}` +
        (p ? num(f(p), d) : ''),
    );
  line('throughput (MB/s)', (x) => x.mbps, 2);
  line('MMIO exits/s', (x) => (x.exits === undefined ? undefined : x.exits / x.seconds));
  line('interrupts/s', (x) => (x.irqs === undefined ? undefined : x.irqs / x.seconds));
  line('MMIO exits per MB', (x) => (x.exits === undefined ? undefined : x.exits / x.mb));
  line('interrupts per MB', (x) => (x.irqs === undefined ? undefined : x.irqs / x.mb));
  line('guest Minsns per MB', (x) => (x.insns === undefined ? undefined : x.insns / 1e6 / x.mb), 2);
  line('transfer time (s)', (x) => x.seconds, 2);
  line('MB per host CPU s', (x) => (x.cpuS ? x.mb / x.cpuS : undefined), 1);
  // Where a MB's host time goes (wasmvisor): the guest's own code, the device models its MMIO
  // exits run, and everything else the VM's thread does (back end, host sockets, completions).
  const perMb = (ms: number | undefined) => (x: Figures) =>
    ms === undefined || !Number.isFinite(ms) ? undefined : ms / x.mb;
  line('host CPU ms per MB', (x) => perMb(x.cpuS === undefined ? undefined : x.cpuS * 1000)(x), 2);
  line('  guest code', (x) => perMb(x.runMs! - x.deviceMs!)(x), 2);
  line('  device models', (x) => perMb(x.deviceMs)(x), 2);
  line('  back end + rest', (x) => perMb(x.cpuS! * 1000 - x.runMs!)(x), 2);
  if (e.pipeMbps !== undefined) line('dd | nc (MB/s)', (x) => x.pipeMbps, 2);
}

async function main(): Promise<void> {
  const mib = BYTES / (1 << 20);
  const qemu = qemuVersion();
  console.log(
    `net: TCP, ${sendCmd('PEER', 0).replace(' 0 ', ' PORT ')} (${mib} MiB) in the guest; ` +
      `same kernel and initramfs in wasmvisor (${JIT ? 'JIT, the default' : 'interpreter: NET_BENCH_JIT=0'}) ` +
      `and ${qemu ?? 'QEMU (not installed)'}`,
  );
  const sink = await HostSink.open();
  const source = await HostSource.open();
  const tmp = mkdtempSync(join(tmpdir(), 'wasmvisor-netbench-'));
  try {
    const ours = {} as Record<NicModel, UserRows>;
    const theirs = {} as Record<NicModel, UserRows>;
    const kernel = qemu ? unpackKernel(tmp) : '';
    for (const model of ONLY === 'switch' ? [] : MODELS) {
      ours[model] = await wasmvisorUser(model, sink, source);
      if (qemu) theirs[model] = await qemuUser(model, kernel, sink, source);
    }
    const pick = (rows: Record<NicModel, UserRows>, dir: keyof UserRows) =>
      Object.fromEntries(MODELS.map((m) => [m, rows[m][dir]])) as Record<NicModel, Figures>;
    for (const [dir, what] of [
      ['up', 'guest → host'],
      ['down', `host → guest (${recvCmd('10.0.2.2', 0).replace(' 0 ', ' PORT ')})`],
    ] as const) {
      if (ONLY === 'switch') break;
      table(`${what} over user networking, wasmvisor`, pick(ours, dir));
      if (!qemu) continue;
      table(`${what} over user networking, QEMU TCG (${QEMU} -M virt)`, pick(theirs, dir));
      const perCpu = (f: Figures): number | undefined => (f.cpuS ? f.mb / f.cpuS : undefined);
      console.log('');
      console.log(
        `wasmvisor / QEMU TCG, ${dir === 'up' ? 'upload' : 'download'}`.padEnd(35) +
          'e1000  virtio-net  virtio-pci',
      );
      for (const [label, f] of [
        ['throughput', (x: Figures) => x.mbps],
        ['MB per host CPU s', perCpu],
      ] as const) {
        console.log(
          `${label.padEnd(20)}${ratio(f(ours.e1000[dir]), f(theirs.e1000[dir]))}` +
            `${ratio(f(ours.virtio[dir]), f(theirs.virtio[dir]))}` +
            `${ratio(f(ours['virtio-pci'][dir]), f(theirs['virtio-pci'][dir]))}`,
        );
      }
    }
    if (ONLY !== 'user') {
      table(
        'guest A → guest B over switch:NAME, two wasmvisor VMs in one thread',
        await switchRows(),
      );
    }
  } finally {
    sink.close();
    source.close();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(`bench: ${(e as Error).message}`);
  process.exit(1);
});
