import { describe, expect, it } from 'vitest';
import { VirtBoard } from '../../../devices/platform/board.js';
import type { ShutdownEvent } from '../../../devices/platform/sifive-test.js';
import { decompile, hasDtc, indexDts } from './dts.js';
import { bytes, FakeHart } from './helpers.js';

const UART = 0x1000_0000;
const PLIC = 0x0c00_0000;
const TEST = 0x10_0000;
const RTC = 0x10_1000;

function setup(harts = 1) {
  const cpus = Array.from({ length: harts }, () => new FakeHart());
  const hart = cpus[0];
  const out: number[] = [];
  const shutdowns: ShutdownEvent[] = [];
  const board = new VirtBoard({
    harts: cpus,
    onConsoleOutput: (b) => out.push(...b),
    onShutdown: (e) => shutdowns.push(e),
    clock: () => 1_000_000_000_000_000_000n,
    setTimer: () => () => {},
    log: () => {},
  });
  const console = () => {
    board.uart.flush();
    return Buffer.from(out).toString();
  };
  return { board, hart, cpus, shutdowns, console, bus: board.bus };
}

describe('VirtBoard', () => {
  it('maps the devices at the virt addresses', () => {
    const { bus, console } = setup();
    for (const c of 'hi\n') bus.write(UART, 1, c.charCodeAt(0));
    expect(console()).toBe('hi\n');
    expect(bus.read(UART + 5, 1) & 0x60).toBe(0x60);
    bus.write(PLIC + 4 * 10, 4, 5);
    expect(bus.read(PLIC + 4 * 10, 4)).toBe(5);
    expect(bus.read(RTC, 4)).toBe(Number(1_000_000_000_000_000_000n & 0xffff_ffffn));
    expect(bus.fault).toBe(false);
    bus.read(0x0200_0000, 4); // the CLINT is in the core, not on the bus
    expect(bus.fault).toBe(true);
  });

  it('routes the UART interrupt through the PLIC to the hart, S context', () => {
    const { bus, board, hart } = setup();
    bus.write(PLIC + 4 * 10, 4, 1); // priority
    bus.write(PLIC + 0x2080, 4, 1 << 10); // enable for context 1
    bus.write(PLIC + 0x20_1000, 4, 0); // threshold
    bus.write(UART + 1, 1, 0x01); // IER: RX data
    expect(hart.seip).toBe(false);
    expect(board.consoleInput(bytes('q'))).toBe(1);
    expect(hart.seip).toBe(true);
    expect(bus.read(PLIC + 0x20_1004, 4)).toBe(10);
    expect(bus.read(UART, 1)).toBe('q'.charCodeAt(0));
    bus.write(PLIC + 0x20_1004, 4, 10);
    expect(hart.seip).toBe(false);
    expect(board.plic.stats.injected).toEqual({ 10: 1 });
  });

  it('reports guest shutdown through the test device', () => {
    const { bus, shutdowns } = setup();
    bus.write(TEST, 4, 0x5555);
    expect(shutdowns).toEqual([{ kind: 'poweroff', code: 0 }]);
  });

  it('counts exits per device', () => {
    const { bus } = setup();
    bus.read(UART + 5, 1);
    bus.write(UART, 1, 0x41);
    bus.read(RTC, 4);
    const stats = bus.stats();
    expect(stats.uart0).toEqual({ reads: 1, writes: 1, errors: 0 });
    expect(stats.rtc).toEqual({ reads: 1, writes: 0, errors: 0 });
    expect(stats.plic.reads).toBe(0);
  });

  it('lists its devices for the host API', () => {
    const { board } = setup();
    expect(board.devices()).toEqual([
      { name: 'test', model: 'sifive,test0', base: 0x10_0000, size: 0x1000, location: 'bus' },
      {
        name: 'rtc',
        model: 'google,goldfish-rtc',
        base: 0x10_1000,
        size: 0x1000,
        irq: 11,
        location: 'bus',
      },
      { name: 'clint', model: 'sifive,clint0', base: 0x200_0000, size: 0x1_0000, location: 'core' },
      {
        name: 'plic',
        model: 'sifive,plic-1.0.0',
        base: 0xc00_0000,
        size: 0x60_0000,
        location: 'bus',
      },
      {
        name: 'uart0',
        model: 'ns16550a',
        base: 0x1000_0000,
        size: 0x100,
        irq: 10,
        location: 'bus',
      },
    ]);
  });

  it('saves, restores and resets all its devices together', () => {
    const a = setup();
    a.bus.write(PLIC + 4 * 10, 4, 1);
    a.bus.write(PLIC + 0x2080, 4, 1 << 10);
    a.bus.write(UART + 1, 1, 0x01);
    a.board.consoleInput(bytes('xyz'));
    const state = JSON.parse(JSON.stringify(a.board.saveState()));
    const b = setup();
    b.board.restoreState(state);
    expect(b.board.saveState()).toEqual(state);
    expect(b.hart.seip).toBe(true);
    expect(b.bus.read(PLIC + 0x20_1004, 4)).toBe(10);
    b.board.reset();
    expect(b.hart.seip).toBe(false);
    expect(b.bus.read(UART + 1, 1)).toBe(0);
    expect(b.bus.read(PLIC + 4 * 10, 4)).toBe(0);
  });

  it('routes the UART to the hart whose S context enabled it, on a 2-hart board', () => {
    const { bus, board, cpus } = setup(2);
    bus.write(PLIC + 4 * 10, 4, 1);
    bus.write(PLIC + 0x2000 + 0x80 * 3, 4, 1 << 10); // context 3 = hart 1 S-mode
    bus.write(UART + 1, 1, 0x01);
    board.consoleInput(bytes('q'));
    expect(cpus.map((c) => [c.meip, c.seip])).toEqual([
      [false, false],
      [false, true],
    ]);
    expect(bus.read(PLIC + 0x20_1004, 4)).toBe(0); // hart 0 S: not its interrupt
    expect(bus.read(PLIC + 0x20_3004, 4)).toBe(10);
    expect(cpus[1].seip).toBe(false);
    // A saved 2-hart board does not fit a 1-hart one.
    const state = JSON.parse(JSON.stringify(board.saveState()));
    expect(() => setup(1).board.restoreState(state)).toThrow(/saved state is for 2 harts/);
  });

  it.skipIf(!hasDtc)('describes its own harts in its devicetree', () => {
    const { board } = setup(3);
    const t = indexDts(decompile(board.dtb({ ramBase: 0x8000_0000, ramSize: 2 ** 28 })).dts);
    expect([...t.keys()].filter((k) => /^\/cpus\/cpu@\d$/.test(k))).toHaveLength(3);
  });

  it.skipIf(!hasDtc)('builds its devicetree', () => {
    const { board } = setup();
    const t = indexDts(decompile(board.dtb({ ramBase: 0x8000_0000, ramSize: 2 ** 28 })).dts);
    expect(t.get('/soc/serial@10000000')!.get('interrupts')).toBe('<0x0a>');
  });
});
