/**
 * Emulation vs paravirtualization on the wire: two VMs of this process, each with one e1000
 * (PCIe) and one virtio-net (virtio-mmio), the e1000s on `switch:bench-e1000` and the
 * virtio-nets on `switch:bench-virtio`. The same pair of guests runs the same TCP transfer once
 * over each NIC model: guest A pipes `dd if=/dev/zero bs=64k count=N` into busybox `nc`, guest B
 * reads it with `nc -l` into /dev/null. Both guests boot once, so the kernel, the guest and the
 * host are the same for both rows.
 *
 * Measured over the transfer (host clock, from typing the command to its end marker):
 *   - throughput: payload bytes / elapsed seconds (1 MB = 1e6 bytes);
 *   - MMIO exits/s: bus reads + writes of the NIC's own regions (e1000: its BARs; virtio-net:
 *     its virtio-mmio slot), in both guests together, per second;
 *   - interrupts/s: PLIC injections of the NIC's source (e1000: its INTx line; virtio-net: its
 *     slot's line), both guests together, per second;
 *   - per MB: exits and interrupts per MB moved, which does not depend on how fast the host is.
 * Both VMs share one thread (switch delivery is synchronous), so the throughput is that of two
 * guests taking turns on one host core.
 */
import { VirtMachine, type MachineStats } from '../main/vm/machine.js';
import { defaultVmConfig, type NicModel } from '../main/vm/config.js';
import { PciHost } from '../devices/pci/host.js';
import { VIRT } from '../devices/platform/memory-map.js';
import { InProcessGuest as Guest } from './in-process-guest.js';

const BLOCK = 64 * 1024;
const COUNT = Number(process.env.NET_BENCH_BLOCKS ?? 512); // 32 MiB per run
const MODELS: readonly NicModel[] = ['e1000', 'virtio'];
const macOf = (model: NicModel, vm: number): string =>
  `52:54:00:00:0${model === 'e1000' ? 1 : 2}:0${vm}`;
const subnet = (model: NicModel): string => (model === 'e1000' ? '10.0.1' : '10.0.2');

/** Where to read a NIC's exits (bus region names) and interrupts (PLIC source) in stats(). */
interface NicProbe {
  regions: string[];
  irq: number;
}

function probeOf(vm: VirtMachine, model: NicModel): NicProbe {
  const nic = vm.nics.find((n) => n.model === model)!;
  if (model === 'e1000') {
    const f = vm.pci.functions().find((x) => x.fn.name === nic.name)!;
    return { regions: [nic.name, `${nic.name}.io`], irq: PciHost.irqOf(f.slot, 1) };
  }
  const slot = vm.virtio.findIndex((t) => t.name === nic.name);
  return { regions: [nic.name], irq: VIRT.virtio.firstIrq + slot };
}

function count(s: MachineStats, p: NicProbe): { exits: number; irqs: number } {
  let exits = 0;
  for (const r of p.regions) exits += (s.exits[r]?.reads ?? 0) + (s.exits[r]?.writes ?? 0);
  return { exits, irqs: s.interrupts[`plic:${p.irq}`] ?? 0 };
}

interface Row {
  model: NicModel;
  mbps: number;
  exitsPerS: number;
  irqsPerS: number;
  exitsPerMB: number;
  irqsPerMB: number;
  seconds: number;
}

async function transfer(a: Guest, b: Guest, model: NicModel, tag: string): Promise<Row> {
  const peer = `${subnet(model)}.2`;
  const probes = [probeOf(a.vm, model), probeOf(b.vm, model)];
  const port = 5000 + (model === 'e1000' ? 1 : 2);
  // The markers are split by "" so that the echoed command line does not match them.
  await b.run(
    `(nc -l -p ${port} >/dev/null; echo RX""${tag}) & echo BG""${tag}`,
    new RegExp(`BG${tag}`),
  );
  await new Promise((r) => setTimeout(r, 500));
  const rxName = b.vm.nics.find((n) => n.model === model)!.name;
  const rxBytes = (): number => b.vm.stats().nics?.[rxName]?.net_rx_bytes ?? 0;
  const rx0 = rxBytes();
  const before = [a.vm.stats(), b.vm.stats()].map((s, i) => count(s, probes[i]));
  const t0 = performance.now();
  a.send(
    `dd if=/dev/zero bs=${BLOCK} count=${COUNT} 2>/dev/null | nc ${peer} ${port}; echo TX""${tag}`,
  );
  await Promise.all([
    a.expect(new RegExp(`TX${tag}`), 120_000),
    b.expect(new RegExp(`RX${tag}`), 120_000),
  ]);
  const seconds = (performance.now() - t0) / 1000;
  const after = [a.vm.stats(), b.vm.stats()].map((s, i) => count(s, probes[i]));
  const exits = after[0].exits + after[1].exits - before[0].exits - before[1].exits;
  const irqs = after[0].irqs + after[1].irqs - before[0].irqs - before[1].irqs;
  const mb = (BLOCK * COUNT) / 1e6;
  // The payload must really have crossed this NIC (frames include headers, so more than it).
  if (rxBytes() - rx0 < BLOCK * COUNT) {
    throw new Error(`${model}: B's NIC received ${rxBytes() - rx0} bytes, less than the payload`);
  }
  return {
    model,
    mbps: mb / seconds,
    exitsPerS: exits / seconds,
    irqsPerS: irqs / seconds,
    exitsPerMB: exits / mb,
    irqsPerMB: irqs / mb,
    seconds,
  };
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const guests: Guest[] = [];
  for (const i of [1, 2]) {
    const cfg = {
      ...defaultVmConfig(`bench${i}`),
      nics: MODELS.map((model) => ({
        model,
        net: `switch:bench-${model}`,
        mac: macOf(model, i),
      })),
    };
    guests.push(new Guest(await VirtMachine.open(cfg)));
  }
  const [a, b] = guests;
  try {
    for (const g of guests) await g.expect(/~# /, 120_000);
    for (const [i, g] of guests.entries()) {
      for (const model of MODELS) {
        // Find the interface by its MAC (probe order decides eth0/eth1).
        await g.run(
          `for d in /sys/class/net/eth*; do [ "$(cat $d/address)" = ${macOf(model, i + 1)} ] && ` +
            `ip addr add ${subnet(model)}.${i + 1}/24 dev \${d##*/} && ip link set \${d##*/} up; done; echo ok$((40+2))`,
          /ok42/,
        );
      }
    }
    await a.run(`ping -c 1 -W 5 ${subnet('e1000')}.2 >/dev/null; echo P$?`, /P\d/, 30_000);
    await a.run(`ping -c 1 -W 5 ${subnet('virtio')}.2 >/dev/null; echo P$?`, /P\d/, 30_000);
    const boot = (performance.now() - t0) / 1000;

    const rows: Row[] = [];
    for (const model of MODELS) rows.push(await transfer(a, b, model, model));

    const [e, v] = rows;
    const mib = (BLOCK * COUNT) / (1 << 20);
    console.log(
      `net: guest A → guest B over TCP, dd if=/dev/zero bs=64k count=${COUNT} (${mib} MiB) | nc; ` +
        `nc -l >/dev/null; two VMs in one process on switch:bench-*, same kernel and guests ` +
        `(booted in ${boot.toFixed(0)} s); counts are both guests' for the NIC under test`,
    );
    console.log('');
    const fmt = (x: number, d = 0): string => x.toFixed(d).padStart(12);
    console.log('figure                         e1000      virtio-net   virtio/e1000');
    const line = (label: string, a1: number, b1: number, d = 0): void =>
      console.log(`${label.padEnd(22)}${fmt(a1, d)}${fmt(b1, d)}${fmt(b1 / a1, 2)}x`);
    line('throughput (MB/s)', e.mbps, v.mbps, 2);
    line('MMIO exits/s', e.exitsPerS, v.exitsPerS);
    line('interrupts/s', e.irqsPerS, v.irqsPerS);
    line('MMIO exits per MB', e.exitsPerMB, v.exitsPerMB);
    line('interrupts per MB', e.irqsPerMB, v.irqsPerMB);
    line('transfer time (s)', e.seconds, v.seconds, 2);
  } finally {
    for (const g of guests) g.vm.stop();
    await Promise.all(guests.map((g) => g.done));
    for (const g of guests) await g.vm.close();
  }
}

main().catch((e: unknown) => {
  console.error(`bench: ${(e as Error).message}`);
  process.exit(1);
});
