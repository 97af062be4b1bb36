/** The ECAM host bridge played like Linux's PCI core: probe, BAR sizing and assignment, INTx. */
import { describe, it, expect } from 'vitest';
import { MmioBus } from '../../../devices/platform/bus.js';
import { PciHost } from '../../../devices/pci/host.js';
import {
  PciFunction,
  CFG,
  CMD_MEMORY,
  CMD_IO,
  CMD_INTX_DISABLE,
} from '../../../devices/pci/function.js';
import { FakeLine, logSink } from '../platform/helpers.js';

const ECAM = 0x3000_0000;
const cfgAddr = (dev: number, reg: number): number => ECAM + (dev << 15) + reg;

function setup() {
  const bus = new MmioBus();
  const lines = new Map<number, FakeLine>();
  const log = logSink();
  const host = new PciHost({
    bus,
    irq: (n) => {
      const l = new FakeLine();
      lines.set(n, l);
      return l;
    },
    log: log.sink,
  });
  bus.map(ECAM, 0x1000_0000, host);
  const regs = { reads: 0, last: 0 };
  const fn = new PciFunction({
    name: 'nic0',
    vendorId: 0x8086,
    deviceId: 0x100e,
    classCode: 0x020000,
    interruptPin: 1,
    bars: [
      {
        kind: 'mem32',
        size: 0x2_0000,
        device: {
          name: 'x',
          read: () => (regs.reads++, 0x1234),
          write: (_o, _s, v) => (regs.last = v),
        },
      },
      { kind: 'io', size: 0x40, device: { name: 'y', read: () => 7, write: () => {} } },
    ],
    capabilities: [{ id: 1, body: [0x22, 0, 0, 0, 0, 0], writable: [0, 0, 3, 0, 0, 0] }],
  });
  host.plug(1, fn);
  return { bus, host, fn, lines, regs, log };
}

describe('PCIe ECAM host bridge', () => {
  it('answers all ones for empty slots and other buses, IDs for present functions', () => {
    const { bus } = setup();
    expect(bus.read(cfgAddr(0, 0), 4)).toBe(0x0008_1b36);
    expect(bus.read(cfgAddr(1, 0), 4)).toBe(0x100e_8086);
    expect(bus.read(cfgAddr(5, 0), 2)).toBe(0xffff);
    expect(bus.read(ECAM + (1 << 20) + (1 << 15), 4)).toBe(0xffff_ffff);
    expect(bus.read(cfgAddr(1, CFG.classCode - 1), 4) >>> 8).toBe(0x020000);
    bus.write(cfgAddr(5, 4), 2, 0xffff); // ignored, no throw
    expect(bus.fault).toBe(false);
  });

  it('walks the capability list', () => {
    const { bus } = setup();
    expect(bus.read(cfgAddr(1, CFG.status), 2) & 0x10).toBe(0x10);
    const ptr = bus.read(cfgAddr(1, CFG.capPtr), 1);
    expect(ptr).toBe(0x40);
    expect(bus.read(cfgAddr(1, ptr), 1)).toBe(1);
    expect(bus.read(cfgAddr(1, ptr + 1), 1)).toBe(0);
    bus.write(cfgAddr(1, ptr + 4), 2, 0xffff); // PMCSR: only the power-state bits stick
    expect(bus.read(cfgAddr(1, ptr + 4), 2)).toBe(3);
  });

  it('sizes BARs by writing all ones, maps them when enabled, unmaps when disabled', () => {
    const { bus, regs } = setup();
    const bar0 = cfgAddr(1, CFG.bar0);
    const bar1 = cfgAddr(1, CFG.bar0 + 4);
    bus.write(bar0, 4, 0xffff_ffff);
    expect(bus.read(bar0, 4)).toBe(0xfffe_0000); // 128 KiB, mem32, not prefetchable
    bus.write(bar1, 4, 0xffff_ffff);
    expect(bus.read(bar1, 4)).toBe(0xffff_ffc1); // 64 bytes of I/O
    expect(bus.read(cfgAddr(1, CFG.bar0 + 8), 4)).toBe(0); // no BAR2
    bus.write(bar0, 4, 0x4000_0000);
    bus.write(bar1, 4, 0x40);
    bus.fault = false;
    bus.read(0x4000_0000, 4);
    expect(bus.fault).toBe(true); // memory decoding still off
    bus.write(cfgAddr(1, CFG.command), 2, CMD_MEMORY | CMD_IO);
    bus.fault = false;
    expect(bus.read(0x4000_0004, 4)).toBe(0x1234);
    expect(bus.read(0x0300_0040, 4)).toBe(7); // I/O port 0x40 in the PIO window
    expect(bus.fault).toBe(false);
    expect(bus.stats().nic0.reads).toBe(1);
    // The guest moves the BAR: the old address stops decoding, counters carry over.
    bus.write(bar0, 4, 0x4010_0000);
    bus.read(0x4010_0000, 4);
    expect(bus.stats().nic0.reads).toBe(2);
    expect(regs.reads).toBe(2);
    bus.read(0x4000_0000, 4);
    expect(bus.fault).toBe(true);
    bus.write(cfgAddr(1, CFG.command), 2, 0);
    bus.fault = false;
    bus.read(0x4010_0000, 4);
    expect(bus.fault).toBe(true);
  });

  it('refuses a BAR outside its window or on top of another region, without throwing', () => {
    const { bus, host, log } = setup();
    bus.write(cfgAddr(1, CFG.bar0), 4, 0x1000_0000); // the UART's neighbourhood
    bus.write(cfgAddr(1, CFG.command), 2, CMD_MEMORY);
    expect(log.lines.join('\n')).toMatch(/outside its window/);
    bus.write(cfgAddr(1, CFG.bar0), 4, 0x4000_0000);
    expect(host.stats.bar_maps).toBe(1);
  });

  it('routes INTA of slot 1 to PLIC 33, honours INTx disable, shows it in status', () => {
    const { bus, fn, lines } = setup();
    expect(PciHost.irqOf(1, 1)).toBe(33);
    expect(PciHost.irqOf(3, 2)).toBe(32);
    fn.setIntx(true);
    expect(lines.get(33)!.level).toBe(true);
    expect(bus.read(cfgAddr(1, CFG.status), 2) & 8).toBe(8);
    bus.write(cfgAddr(1, CFG.command), 2, CMD_INTX_DISABLE);
    expect(lines.get(33)!.level).toBe(false);
    bus.write(cfgAddr(1, CFG.command), 2, 0);
    expect(lines.get(33)!.level).toBe(true);
    fn.setIntx(false);
    expect(lines.get(33)!.level).toBe(false);
  });

  it('saves and restores configuration space, remapping BARs', () => {
    const a = setup();
    a.bus.write(cfgAddr(1, CFG.bar0), 4, 0x4000_0000);
    a.bus.write(cfgAddr(1, CFG.command), 2, CMD_MEMORY);
    const st = JSON.parse(JSON.stringify(a.host.saveState()));
    const b = setup();
    b.host.restoreState(st);
    expect(b.bus.read(0x4000_0000, 4)).toBe(0x1234);
    b.host.reset();
    b.bus.fault = false;
    b.bus.read(0x4000_0000, 4);
    expect(b.bus.fault).toBe(true);
  });
});
