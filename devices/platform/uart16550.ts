/**
 * NS16550A UART, as on QEMU's virt board (ns16550a, reg-shift 0, 1-byte registers at 0..7).
 *
 * Transmission is instantaneous: THR is always empty again by the time the guest looks, so
 * LSR.THRE/TEMT stay set (OpenSBI and earlycon poll them) and the THRE interrupt follows every
 * write while IER.ETBEI is on (Linux's interrupt-driven TX). Output bytes are batched and handed
 * to `onTransmit` once per microtask (or when the batch fills, or on `flush()`).
 *
 * Reception: the guest sees a 16-byte RX FIFO (1 byte with FCR.FE clear). Host input beyond that
 * waits in a host-side buffer and moves into the FIFO as the guest drains it, so a paste is not
 * lost; only when that buffer is full too is input dropped and LSR.OE (overrun) reported.
 * The character-timeout interrupt is signalled as soon as data sits below the trigger level
 * (there is no bit clock to count four character times against).
 */
import { ByteQueue } from './byte-queue.js';
import { GuestErrorLog, hex, type LogSink } from './guest-log.js';
import type { IrqLine, MmioDevice } from './mmio.js';

// Register offsets (DLAB = LCR bit 7 switches 0/1 to the divisor latch).
const RBR_THR_DLL = 0;
const IER_DLM = 1;
const IIR_FCR = 2;
const LCR = 3;
const MCR = 4;
const LSR = 5;
const MSR = 6;
const SCR = 7;

const IER_RDI = 0x01;
const IER_THRI = 0x02;
const IER_RLSI = 0x04;
const IER_MSI = 0x08;

const IIR_NO_INT = 0x01;
const IIR_MSI = 0x00;
const IIR_THRI = 0x02;
const IIR_RDI = 0x04;
const IIR_RLSI = 0x06;
const IIR_CTI = 0x0c;
const IIR_FIFO_ENABLED = 0xc0;

const FCR_FE = 0x01;
const FCR_CLEAR_RX = 0x02;
const FCR_STORED = 0xc9; // FE, DMA mode, trigger level

const LCR_DLAB = 0x80;
const MCR_LOOP = 0x10;

const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;
const LSR_ERRORS = 0x1e; // OE | PE | FE | BI

const MSR_DELTAS = 0x0f;
const MSR_TERI = 0x04;
/** Modem inputs outside loopback: carrier, data set ready and clear to send are all asserted. */
const MSR_IDLE = 0xb0;

const FIFO_SIZE = 16;
const TRIGGER_LEVELS = [1, 4, 8, 14];
const TX_BATCH = 4096;

export interface Uart16550State {
  version: 1;
  ier: number;
  lcr: number;
  mcr: number;
  fcr: number;
  scr: number;
  dll: number;
  dlm: number;
  /** OE/PE/FE/BI bits of LSR, cleared by reading LSR. */
  lsrErrors: number;
  msr: number;
  /** A THRE interrupt is owed (cleared by reading it in IIR or writing THR). */
  thrPending: boolean;
  /** The byte RBR returns when the FIFO is empty. */
  lastRx: number;
  rxFifo: number[];
  /** Host input not yet in the FIFO. */
  rxBacklog: number[];
}

export interface Uart16550Stats {
  txBytes: number;
  rxBytes: number;
  /** Host input dropped because the host-side buffer was full (each sets LSR.OE). */
  rxDropped: number;
  /** Rising edges of the interrupt line. */
  interrupts: number;
  guestErrors: number;
}

export interface Uart16550Options {
  irq: IrqLine;
  onTransmit?: (bytes: Uint8Array) => void;
  log?: LogSink;
  /** Host-side input buffer behind the FIFO (default 64 KiB). */
  inputBufferSize?: number;
  /** Device name for stats and logs (default "uart0"). */
  name?: string;
}

export class Uart16550 implements MmioDevice {
  readonly name: string;
  onTransmit: ((bytes: Uint8Array) => void) | undefined;
  /**
   * LSR reads that found no input: a firmware waiting for a key (U-Boot's prompt, GRUB's menu)
   * reads LSR in a loop; the run loop tells such a slice from work by this count (machine.ts).
   */
  emptyPolls = 0;

  private readonly irq: IrqLine;
  private readonly log: GuestErrorLog;
  private readonly fifo = new ByteQueue(FIFO_SIZE);
  private readonly backlog: ByteQueue;
  private readonly counters = { txBytes: 0, rxBytes: 0, rxDropped: 0, interrupts: 0 };
  private irqLevel = false;
  private txBuf = new Uint8Array(TX_BATCH);
  private txLen = 0;
  private flushQueued = false;

  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private fcr = 0;
  private scr = 0;
  private dll = 0;
  private dlm = 0;
  private lsrErrors = 0;
  private msr = MSR_IDLE;
  private thrPending = false;
  private lastRx = 0;

  constructor(opts: Uart16550Options) {
    this.name = opts.name ?? 'uart0';
    this.irq = opts.irq;
    this.onTransmit = opts.onTransmit;
    this.log = new GuestErrorLog(this.name, opts.log);
    this.backlog = new ByteQueue(opts.inputBufferSize ?? 64 * 1024);
    this.reset();
  }

  get stats(): Uart16550Stats {
    return { ...this.counters, guestErrors: this.log.count };
  }

  reset(): void {
    this.ier = 0;
    this.lcr = 0;
    this.mcr = 0;
    this.fcr = 0;
    this.scr = 0;
    // Divisor 12 = 9600 baud at 1.8432 MHz, the conventional power-on value.
    this.dll = 12;
    this.dlm = 0;
    this.lsrErrors = 0;
    this.msr = MSR_IDLE;
    this.thrPending = false;
    this.lastRx = 0;
    this.fifo.clear();
    this.refill();
    this.update(true);
  }

  /** Host input (keyboard, paste). Returns how many bytes were accepted; the rest are dropped. */
  receive(bytes: Uint8Array): number {
    let accepted = 0;
    for (const b of bytes) {
      if (this.backlog.push(b)) {
        accepted++;
      } else {
        this.counters.rxDropped++;
        this.lsrErrors |= LSR_OE;
      }
    }
    this.refill();
    this.update();
    return accepted;
  }

  /** Room left in the host-side input buffer, for back-pressure on the console source. */
  get inputSpace(): number {
    return this.backlog.capacity - this.backlog.length;
  }

  /** Delivers batched output now. */
  flush(): void {
    this.flushQueued = false;
    if (this.txLen === 0) return;
    const out = this.txBuf.slice(0, this.txLen);
    this.txLen = 0;
    this.onTransmit?.(out);
  }

  read(offset: number, _size: 1 | 2 | 4): number {
    switch (offset) {
      case RBR_THR_DLL:
        return this.lcr & LCR_DLAB ? this.dll : this.readRbr();
      case IER_DLM:
        return this.lcr & LCR_DLAB ? this.dlm : this.ier;
      case IIR_FCR: {
        const id = this.interruptId();
        // Reading IIR while it reports THRE acknowledges that interrupt.
        if (id === IIR_THRI) {
          this.thrPending = false;
          this.update();
        }
        return id | (this.fcr & FCR_FE ? IIR_FIFO_ENABLED : 0);
      }
      case LCR:
        return this.lcr;
      case MCR:
        return this.mcr;
      case LSR: {
        const v = this.lsr();
        if (!(v & LSR_DR)) this.emptyPolls++;
        this.lsrErrors = 0;
        this.update();
        return v;
      }
      case MSR: {
        const v = this.msr;
        this.msr &= ~MSR_DELTAS;
        this.update();
        return v;
      }
      case SCR:
        return this.scr;
      default:
        this.log.report(`read of unknown register ${hex(offset)}`);
        return 0;
    }
  }

  write(offset: number, _size: 1 | 2 | 4, value: number): void {
    const v = value & 0xff;
    switch (offset) {
      case RBR_THR_DLL:
        if (this.lcr & LCR_DLAB) this.dll = v;
        else this.writeThr(v);
        break;
      case IER_DLM:
        if (this.lcr & LCR_DLAB) this.dlm = v;
        else this.writeIer(v);
        break;
      case IIR_FCR:
        this.writeFcr(v);
        break;
      case LCR:
        this.lcr = v;
        break;
      case MCR:
        this.writeMcr(v & 0x1f);
        break;
      case LSR:
      case MSR:
        // Factory-test writes on real parts; nothing a driver needs.
        this.log.report(`write ${hex(v)} to read-only ${offset === LSR ? 'LSR' : 'MSR'}`);
        break;
      case SCR:
        this.scr = v;
        break;
      default:
        this.log.report(`write ${hex(v)} to unknown register ${hex(offset)}`);
        return;
    }
    this.update();
  }

  saveState(): Uart16550State {
    return {
      version: 1,
      ier: this.ier,
      lcr: this.lcr,
      mcr: this.mcr,
      fcr: this.fcr,
      scr: this.scr,
      dll: this.dll,
      dlm: this.dlm,
      lsrErrors: this.lsrErrors,
      msr: this.msr,
      thrPending: this.thrPending,
      lastRx: this.lastRx,
      rxFifo: this.fifo.toArray(),
      rxBacklog: this.backlog.toArray(),
    };
  }

  restoreState(s: Uart16550State): void {
    if (s.version !== 1) throw new Error(`${this.name}: unsupported state version ${s.version}`);
    this.ier = s.ier & 0x0f;
    this.lcr = s.lcr & 0xff;
    this.mcr = s.mcr & 0x1f;
    this.fcr = s.fcr & FCR_STORED;
    this.scr = s.scr & 0xff;
    this.dll = s.dll & 0xff;
    this.dlm = s.dlm & 0xff;
    this.lsrErrors = s.lsrErrors & LSR_ERRORS;
    this.msr = s.msr & 0xff;
    this.thrPending = s.thrPending;
    this.lastRx = s.lastRx & 0xff;
    this.fifo.clear();
    for (const b of s.rxFifo.slice(0, this.fifoCapacity())) this.fifo.push(b & 0xff);
    this.backlog.clear();
    for (const b of s.rxBacklog) this.backlog.push(b & 0xff);
    this.update(true);
  }

  private fifoCapacity(): number {
    return this.fcr & FCR_FE ? FIFO_SIZE : 1;
  }

  private lsr(): number {
    return (this.fifo.length > 0 ? LSR_DR : 0) | this.lsrErrors | LSR_THRE | LSR_TEMT;
  }

  private readRbr(): number {
    const b = this.fifo.shift();
    if (b >= 0) {
      this.lastRx = b;
      this.refill();
      this.update();
    }
    return this.lastRx;
  }

  private writeThr(v: number): void {
    this.thrPending = false;
    if (this.mcr & MCR_LOOP) {
      this.loopback(v);
    } else {
      this.counters.txBytes++;
      this.txBuf[this.txLen++] = v;
      if (this.txLen === this.txBuf.length) this.flush();
      else if (!this.flushQueued) {
        this.flushQueued = true;
        queueMicrotask(() => this.flush());
      }
    }
    // The byte left at once: THR is empty again.
    if (this.ier & IER_THRI) this.thrPending = true;
  }

  private loopback(v: number): void {
    if (this.fifo.length >= this.fifoCapacity()) {
      this.lsrErrors |= LSR_OE;
      return;
    }
    this.fifo.push(v);
    this.counters.rxBytes++;
  }

  private writeIer(v: number): void {
    const changed = (this.ier ^ v) & IER_THRI;
    this.ier = v & 0x0f;
    // Enabling ETBEI with THR empty raises THRE at once; Linux's start-up probe relies on it.
    if (changed) this.thrPending = (this.ier & IER_THRI) !== 0;
  }

  private writeFcr(v: number): void {
    let clearRx = (v & FCR_CLEAR_RX) !== 0;
    // Switching the FIFOs on or off empties them.
    if ((v ^ this.fcr) & FCR_FE) clearRx = true;
    this.fcr = v & FCR_FE ? v & FCR_STORED : 0;
    if (clearRx) {
      this.fifo.clear();
      this.refill();
    }
  }

  private writeMcr(v: number): void {
    const wasLoop = (this.mcr & MCR_LOOP) !== 0;
    this.mcr = v;
    let lines = MSR_IDLE;
    if (v & MCR_LOOP) {
      // Outputs fed back to inputs: RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD.
      lines = ((v & 0x02) << 3) | ((v & 0x01) << 5) | ((v & 0x04) << 4) | ((v & 0x08) << 4);
    }
    const old = this.msr & 0xf0;
    if (lines !== old) {
      const changed = (lines ^ old) >> 4;
      // TERI flags only the trailing edge of RI.
      let delta = changed & ~MSR_TERI;
      if (changed & MSR_TERI && old & 0x40) delta |= MSR_TERI;
      this.msr = lines | (this.msr & MSR_DELTAS) | delta;
    }
    if (wasLoop && !(v & MCR_LOOP)) this.refill();
  }

  /** Moves host input into the FIFO as far as it has room. */
  private refill(): void {
    if (this.mcr & MCR_LOOP) return; // the receiver is disconnected from the line
    const cap = this.fifoCapacity();
    while (this.fifo.length < cap && this.backlog.length > 0) {
      this.fifo.push(this.backlog.shift());
      this.counters.rxBytes++;
    }
  }

  /** The highest-priority pending interrupt, as IIR bits 3..0. */
  private interruptId(): number {
    const ier = this.ier;
    if (ier & IER_RLSI && this.lsrErrors) return IIR_RLSI;
    if (ier & IER_RDI && this.fifo.length > 0) {
      if (!(this.fcr & FCR_FE)) return IIR_RDI;
      return this.fifo.length >= TRIGGER_LEVELS[this.fcr >> 6] ? IIR_RDI : IIR_CTI;
    }
    if (ier & IER_THRI && this.thrPending) return IIR_THRI;
    if (ier & IER_MSI && this.msr & MSR_DELTAS) return IIR_MSI;
    return IIR_NO_INT;
  }

  /** Drives the line on change; `force` re-drives it (after reset/restore). */
  private update(force = false): void {
    const level = this.interruptId() !== IIR_NO_INT;
    if (force || level !== this.irqLevel) {
      if (level && !this.irqLevel) this.counters.interrupts++;
      this.irqLevel = level;
      this.irq.set(level);
    }
  }
}
