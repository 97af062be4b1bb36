import { describe, expect, it } from 'vitest';
import { Uart16550 } from '../../../devices/platform/uart16550.js';
import { bytes, FakeLine, logSink } from './helpers.js';

const RBR = 0;
const THR = 0;
const DLL = 0;
const IER = 1;
const DLM = 1;
const IIR = 2;
const FCR = 2;
const LCR = 3;
const MCR = 4;
const LSR = 5;
const MSR = 6;
const SCR = 7;

function setup(inputBufferSize?: number) {
  const irq = new FakeLine();
  const out: number[] = [];
  const log = logSink();
  const uart = new Uart16550({
    irq,
    onTransmit: (b) => out.push(...b),
    log: log.sink,
    inputBufferSize,
  });
  const r = (off: number) => uart.read(off, 1);
  const w = (off: number, v: number) => uart.write(off, 1, v);
  const output = () => {
    uart.flush();
    return Buffer.from(out).toString('latin1');
  };
  return { uart, irq, r, w, output, log };
}

describe('16550A UART', () => {
  it('works with OpenSBI: divisor latch init, polled THRE output, polled input', () => {
    const { r, w, uart, output } = setup();
    // uart8250_init for 3686400 Hz / 115200 baud.
    w(IER, 0);
    w(LCR, 0x80);
    w(DLL, 2);
    w(DLM, 0);
    expect(r(DLL)).toBe(2);
    expect(r(DLM)).toBe(0);
    w(LCR, 0x03);
    expect(r(IER)).toBe(0); // DLAB off: offset 1 is IER again
    w(FCR, 0x01);
    w(MCR, 0);
    r(LSR);
    r(RBR);
    w(SCR, 0);
    const putc = (c: string) => {
      let spins = 0;
      while (!(r(LSR) & 0x20)) if (++spins > 10) throw new Error('THRE never set');
      w(THR, c.charCodeAt(0));
    };
    for (const c of 'OpenSBI v1.3\r\n') putc(c);
    expect(output()).toBe('OpenSBI v1.3\r\n');
    const getc = () => (r(LSR) & 0x01 ? r(RBR) : -1);
    expect(getc()).toBe(-1);
    uart.receive(bytes('y'));
    expect(getc()).toBe('y'.charCodeAt(0));
    expect(getc()).toBe(-1);
  });

  it('batches output per microtask', async () => {
    const irq = new FakeLine();
    const batches: string[] = [];
    const uart = new Uart16550({ irq, onTransmit: (b) => batches.push(Buffer.from(b).toString()) });
    for (const c of 'hello') uart.write(THR, 1, c.charCodeAt(0));
    expect(batches).toEqual([]);
    await Promise.resolve();
    expect(batches).toEqual(['hello']);
    uart.write(THR, 1, 0x21);
    await Promise.resolve();
    expect(batches).toEqual(['hello', '!']);
    expect(uart.stats.txBytes).toBe(6);
  });

  it("passes Linux 8250's start-up probes: FIFO type, scratch, THRE interrupt test", () => {
    const { r, w, irq } = setup();
    // serial8250_clear_fifos, then read back the clear-on-read registers.
    w(FCR, 0x01);
    w(FCR, 0x07);
    w(FCR, 0);
    r(LSR);
    r(RBR);
    r(IIR);
    r(MSR);
    w(LCR, 0x03);
    w(MCR, 0x0b); // DTR | RTS | OUT2
    // Scratch register survives a write/read.
    w(SCR, 0xa5);
    expect(r(SCR)).toBe(0xa5);
    w(SCR, 0x5a);
    expect(r(SCR)).toBe(0x5a);
    // FIFOs on: IIR bits 7:6 both set identifies a 16550A.
    w(FCR, 0x81);
    expect(r(IIR) & 0xc0).toBe(0xc0);
    // UART_BUG_TXEN test: enabling THRI with THR empty must interrupt immediately.
    w(IER, 0x02);
    const lsr = r(LSR);
    const iir = r(IIR);
    w(IER, 0);
    expect(lsr & 0x60).toBe(0x60);
    expect(iir & 0x01).toBe(0);
    expect(iir & 0x0f).toBe(0x02);
    expect(irq.level).toBe(false);
    // UART_BUG_THRE test: THRE must be re-asserted when THRI is toggled off and on.
    w(IER, 0x02);
    const iir1 = r(IIR);
    w(IER, 0);
    w(IER, 0x02);
    const iir2 = r(IIR);
    w(IER, 0);
    expect(iir1 & 0x01).toBe(0);
    expect(iir2 & 0x01).toBe(0);
  });

  it('drives interrupt-driven TX: THRE after every write until THRI is turned off', () => {
    const { r, w, irq, output } = setup();
    w(FCR, 0x81);
    w(IER, 0x05); // RDI | RLSI
    expect(irq.level).toBe(false);
    w(IER, 0x07); // + THRI (start_tx)
    expect(irq.level).toBe(true);
    // The handler: IIR says THRE (reading it acknowledges), then it fills the FIFO.
    expect(r(IIR)).toBe(0xc2);
    expect(irq.level).toBe(false);
    for (const c of 'login: ') w(THR, c.charCodeAt(0));
    expect(irq.level).toBe(true); // empty again: the next THRE interrupt is due
    w(IER, 0x05); // stop_tx
    expect(irq.level).toBe(false);
    expect(r(IIR)).toBe(0xc1);
    expect(output()).toBe('login: ');
  });

  it('raises the RX interrupt: timeout below the trigger level, data-available at it', () => {
    const { r, w, irq, uart } = setup();
    w(FCR, 0x81); // FIFO on, trigger level 8
    w(IER, 0x05);
    uart.receive(bytes('ls\r'));
    expect(irq.level).toBe(true);
    expect(r(IIR)).toBe(0xcc); // character timeout
    let got = '';
    while (r(LSR) & 1) got += String.fromCharCode(r(RBR));
    expect(got).toBe('ls\r');
    expect(irq.level).toBe(false);
    uart.receive(bytes('0123456789'));
    expect(r(IIR)).toBe(0xc4); // received data available
    // Interrupts off: data stays but the line drops.
    w(IER, 0);
    expect(irq.level).toBe(false);
    expect(r(IIR)).toBe(0xc1);
    expect(r(LSR) & 1).toBe(1);
  });

  it('keeps a 16-byte FIFO and feeds it from host-side buffering as the guest drains', () => {
    const { r, w, uart } = setup();
    w(FCR, 0x01);
    const text = 'The quick brown fox jumps over the lazy dog. '.repeat(20);
    expect(uart.receive(bytes(text))).toBe(text.length);
    expect(uart.saveState().rxFifo).toHaveLength(16);
    let got = '';
    while (r(LSR) & 1) got += String.fromCharCode(r(RBR));
    expect(got).toBe(text);
    // FIFO disabled: one byte at a time, still nothing lost.
    w(FCR, 0);
    uart.receive(bytes('abc'));
    expect(uart.saveState().rxFifo).toHaveLength(1);
    got = '';
    while (r(LSR) & 1) got += String.fromCharCode(r(RBR));
    expect(got).toBe('abc');
  });

  it('reports input overrun when the host-side buffer is full too', () => {
    const { r, w, uart, irq } = setup(32);
    w(FCR, 0x01);
    w(IER, 0x04); // RLSI only
    expect(uart.receive(new Uint8Array(40).fill(0x41))).toBe(32);
    expect(uart.stats.rxDropped).toBe(8);
    expect(uart.inputSpace).toBe(16); // 16 moved on into the FIFO
    expect(irq.level).toBe(true);
    expect(r(IIR)).toBe(0xc6); // receiver line status
    expect(r(LSR) & 0x02).toBe(0x02); // OE, cleared by the read
    expect(r(LSR) & 0x02).toBe(0);
    expect(irq.level).toBe(false);
    let n = 0;
    while (r(LSR) & 1) n += r(RBR) === 0x41 ? 1 : 0;
    expect(n).toBe(32);
  });

  it('clears the RX FIFO on FCR request, then refills from the host buffer', () => {
    const { r, w, uart } = setup();
    w(FCR, 0x01);
    uart.receive(new Uint8Array(20).fill(0x30));
    w(FCR, 0x03); // clear RX
    let n = 0;
    while (r(LSR) & 1) {
      r(RBR);
      n++;
    }
    expect(n).toBe(4); // the 16 in the FIFO are gone; the 4 waiting behind arrive
  });

  it('loops back TX to RX and outputs to inputs in loopback mode', () => {
    const { r, w, output } = setup();
    w(MCR, 0x1a); // LOOP | RTS | OUT2
    expect(r(MSR) & 0xf0).toBe(0x90); // CTS | DCD: what Linux's autoconfig checks
    w(THR, 0x55);
    expect(r(LSR) & 1).toBe(1);
    expect(r(RBR)).toBe(0x55);
    expect(output()).toBe('');
    w(MCR, 0x0b);
    expect(r(MSR) & 0xf0).toBe(0xb0);
  });

  it('raises modem-status interrupts on loopback line changes', () => {
    const { r, w, irq } = setup();
    w(MCR, 0x10);
    r(MSR);
    w(IER, 0x08);
    w(MCR, 0x12); // RTS -> CTS changes
    expect(irq.level).toBe(true);
    expect(r(IIR) & 0x0f).toBe(0x00);
    expect(r(MSR) & 0x01).toBe(0x01); // DCTS, cleared by the read
    expect(irq.level).toBe(false);
  });

  it('ignores hostile accesses without throwing, and counts them', () => {
    const { uart, log } = setup();
    for (let off = 8; off < 0x100; off += 7) {
      expect(uart.read(off, 4)).toBe(0);
      uart.write(off, 4, 0xffff_ffff);
    }
    uart.write(LSR, 1, 0xff);
    uart.write(MSR, 2, 0xff);
    uart.write(SCR, 4, 0x1234_5678);
    expect(uart.read(SCR, 4)).toBe(0x78);
    expect(uart.stats.guestErrors).toBeGreaterThan(30);
    expect(log.lines.length).toBeLessThanOrEqual(17);
  });

  it('saves and restores its state, including buffered input', () => {
    const a = setup();
    a.w(LCR, 0x80);
    a.w(DLL, 1);
    a.w(LCR, 0x03);
    a.w(FCR, 0x41);
    a.w(IER, 0x01);
    a.w(SCR, 0x77);
    a.uart.receive(bytes('x'.repeat(30)));
    const state = JSON.parse(JSON.stringify(a.uart.saveState()));
    const b = setup();
    b.uart.restoreState(state);
    expect(b.uart.saveState()).toEqual(a.uart.saveState());
    expect(b.irq.level).toBe(true);
    expect(b.r(IIR)).toBe(0xc4); // 16 >= trigger 4
    let n = 0;
    while (b.r(LSR) & 1) n += b.r(RBR) === 0x78 ? 1 : 0;
    expect(n).toBe(30);
    b.uart.reset();
    expect(b.r(LCR)).toBe(0);
    expect(b.r(IIR)).toBe(0x01);
    expect(b.r(LSR)).toBe(0x60);
    expect(b.irq.level).toBe(false);
    expect(() => b.uart.restoreState({ ...state, version: 9 })).toThrow(/version/);
  });
});
