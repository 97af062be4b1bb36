/**
 * The dirty-page log (live migration's pre-copy): after a harvest, exactly the guest-RAM pages
 * written since show up in the next one, whoever wrote them: the CPU's stores (interpreted and
 * translated, plain and atomic), the ring processor's used-ring writes, and device models' DMA
 * (virtio buffers, including a virtio-blk read that completes after the harvest, an e1000's
 * receive DMA, fw_cfg's DMA, the balloon giving pages back). Off, nothing is marked.
 */
import { describe, expect, it } from 'vitest';
import { ExitReason } from '../../../main/vm/core.js';
import { E1000 } from '../../../devices/e1000/device.js';
import { REG } from '../../../devices/e1000/regs.js';
import { NetPort } from '../../../devices/net/port.js';
import type { NetBackend } from '../../../devices/net/backend.js';
import type { NetPacket } from '../../../devices/net/packet.js';
import { DMA, FW_CFG, FwCfg } from '../../../devices/platform/fw-cfg.js';
import { DirtyLog } from '../../../devices/platform/dirty-log.js';
import { VirtioRng } from '../../../devices/virtio/rng/device.js';
import { VirtioBlk } from '../../../devices/virtio/blk/device.js';
import type { BlockBackend } from '../../../devices/block/backend.js';
import { CFG, CMD_BUS_MASTER, CMD_MEMORY } from '../../../devices/pci/function.js';
import { bType, iType, sType } from '../rv-encode.js';
import { bareCore, RAM_BASE } from './bare-core.js';
import { MockDriver, settle } from '../virtio/driver.js';

/** The pages set in a harvested bitmap. */
function pages(bitmap: Uint8Array): number[] {
  const out: number[] = [];
  bitmap.forEach((b, i) => {
    for (let k = 0; k < 8; k++) if (b & (1 << k)) out.push(i * 8 + k);
  });
  return out;
}

const PAGE = 4096;
const A = 0x10; // pages the program writes
const B = 0x21;
const C = 0x32; // by AMO
const TOHOST = RAM_BASE + 0x40 * PAGE;

/**
 * x10 times: sd to page A, sw to page B, amoadd.d to page C (x5, x6, x8 point there), then a
 * store to tohost ends the run.
 */
function program(): number[] {
  const amoaddD = ((0x00 << 27) | (7 << 20) | (8 << 15) | (3 << 12) | (0 << 7) | 0x2f) >>> 0;
  return [
    sType(3, 5, 0, 0), // sd x0, 0(x5)
    sType(2, 6, 0, 8), // sw x0, 8(x6)
    amoaddD, // amoadd.d x0, x7, (x8)
    iType(0x13, 10, 0, 10, -1), // addi x10, x10, -1
    bType(1, 10, 0, -16), // bnez x10, loop
    sType(2, 9, 11, 0), // sw x11, 0(x9): tohost
  ];
}

function runProgram(jit: boolean) {
  const core = bareCore(1 << 20, { jit, jitOptions: { threshold: 1, batch: 1 } });
  const code = Buffer.alloc(program().length * 4);
  program().forEach((w, i) => code.writeUInt32LE(w, i * 4));
  core.ram.set(code, 0);
  core.setTohost(BigInt(TOHOST));
  const go = (): void => {
    core.clearTohost();
    core.setX(5, BigInt(RAM_BASE + A * PAGE));
    core.setX(6, BigInt(RAM_BASE + B * PAGE));
    core.setX(7, 1n);
    core.setX(8, BigInt(RAM_BASE + C * PAGE + 8));
    core.setX(9, BigInt(TOHOST));
    core.setX(10, 50n);
    core.setX(11, 1n);
    core.pc = BigInt(RAM_BASE);
    for (let n = 0; n < 100 && core.run(10_000) !== ExitReason.Tohost; n++);
  };
  return { core, go };
}

describe('the dirty-page log', () => {
  for (const jit of [false, true]) {
    it(`marks the pages the CPU stores to, plain and atomic, ${jit ? 'translated' : 'interpreted'}, afresh after each harvest`, () => {
      const { core, go } = runProgram(jit);
      go(); // warm: with the JIT, the loop is translated from here on
      core.dirtyLogStart();
      expect(pages(core.dirtyLogHarvest())).toHaveLength(256); // all of the 1 MiB, at first
      expect(pages(core.dirtyLogHarvest())).toEqual([]);
      go();
      expect(pages(core.dirtyLogHarvest())).toEqual([A, B, C, 0x40]);
      // The store TLB was emptied: the same stores mark the same pages again.
      go();
      expect(pages(core.dirtyLogHarvest())).toEqual([A, B, C, 0x40]);
      if (jit) expect(core.jit!.currentStats().blockInsns).toBeGreaterThan(100n);
      core.dirtyLogStop();
      go();
      expect(pages(core.dirtyLogHarvest())).toEqual([]);
    });
  }

  it('marks what virtio devices write: buffers and the used ring (split and packed)', () => {
    for (const packed of [false, true]) {
      const d = new MockDriver(new VirtioRng(), { packed }).init();
      const q = d.queues[0]!;
      d.core.dirtyLogStart();
      d.core.dirtyLogHarvest();
      const buf = d.mem.alloc(PAGE * 2, PAGE);
      q.add([{ addr: buf + PAGE - 8, len: 16, write: true }]); // straddles two pages
      d.kick();
      const got = pages(d.core.dirtyLogHarvest());
      const page = (gpa: number): number => Math.floor((gpa - RAM_BASE) / PAGE);
      expect(got).toContain(page(buf));
      expect(got).toContain(page(buf) + 1);
      // Where the used entry was written: the used ring (split) or the descriptor ring (packed).
      expect(got).toContain(page(packed ? q.desc : q.used));
      d.core.dirtyLogStop();
    }
  });

  it('marks a virtio-blk read that completes after the harvest that followed its start', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const disk: BlockBackend = {
      name: 'slow',
      size: 1 << 20,
      readOnly: false,
      async read(_off: number, buf: Uint8Array) {
        await gate;
        buf.fill(0xab);
      },
      async write() {},
      async flush() {},
      async discard() {},
      async writeZeroes() {},
      async close() {},
    } as unknown as BlockBackend;
    const d = new MockDriver(new VirtioBlk({ backend: disk, serial: 's' })).init();
    const q = d.queues[0]!;
    d.core.dirtyLogStart();
    const hdr = d.mem.alloc(16);
    d.mem.setU32(hdr, 0); // IN
    const data = d.mem.alloc(PAGE, PAGE);
    const status = d.mem.alloc(1);
    q.add([
      { addr: hdr, len: 16 },
      { addr: data, len: PAGE, write: true },
      { addr: status, len: 1, write: true },
    ]);
    d.kick();
    d.core.dirtyLogHarvest(); // a pre-copy round sends the page before the read lands
    release();
    for (let i = 0; i < 5; i++) await settle();
    expect(d.mem.u8(data)).toBe(0xab);
    expect(pages(d.core.dirtyLogHarvest())).toContain((data - RAM_BASE) / PAGE);
    d.core.dirtyLogStop();
  });

  it("marks an e1000's receive DMA (buffer and descriptor) and fw_cfg's DMA", () => {
    const ram = new Uint8Array(1 << 20);
    const log = new DirtyLog(new Uint8Array(32), RAM_BASE, ram.length);
    log.on = true;
    const memory = { ram, ramBase: RAM_BASE, dirty: log };
    class Wire implements NetBackend {
      readonly spec = 'test';
      carrier = true;
      onReceive: ((p: NetPacket) => void) | undefined;
      onCarrier: ((up: boolean) => void) | undefined;
      send(): void {}
      close(): void {}
    }
    const wire = new Wire();
    const nic = new E1000({
      mac: Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56),
      port: new NetPort('e1000-0', wire, () => new Wire()),
      memory,
    });
    nic.pci.hooks = { barsChanged: () => {}, intxChanged: () => {} };
    nic.pci.writeConfig(CFG.command, 2, CMD_MEMORY | CMD_BUS_MASTER);
    const mmio = nic.pci.bars[0]!.device;
    const w = (off: number, v: number): void => mmio.write(off, 4, v);
    const dv = new DataView(ram.buffer);
    const RX = RAM_BASE + 0x2000;
    const RXBUF = RAM_BASE + 0x10000;
    for (let i = 0; i < 8; i++) dv.setUint32(RX - RAM_BASE + i * 16, RXBUF + i * 2048, true);
    w(REG.RDBAL, RX);
    w(REG.RDLEN, 8 * 16);
    w(REG.RDH, 0);
    w(REG.RDT, 2);
    w(REG.RCTL, (1 << 1) | (1 << 15));
    log.bitmap.fill(0);
    const f = new Uint8Array(80).fill(0xff, 0, 6);
    wire.onReceive!({ data: f });
    expect(pages(log.bitmap)).toEqual([0x2, 0x10]);

    log.bitmap.fill(0);
    const fw = new FwCfg({ memory, cpus: 1 });
    const desc = RAM_BASE + 0x5000;
    const target = RAM_BASE + 0x7ff0;
    const ddv = new DataView(ram.buffer, desc - RAM_BASE, 16);
    ddv.setUint32(0, (FW_CFG.SIGNATURE << 16) | DMA.SELECT | DMA.READ);
    ddv.setUint32(4, 32);
    ddv.setBigUint64(8, BigInt(target));
    const swap32 = (v: number) => new DataView(new Uint32Array([v]).buffer).getUint32(0, false);
    fw.write(16, 4, 0); // the descriptor's address, big-endian: high word, then low
    fw.write(20, 4, swap32(desc));
    expect(String.fromCharCode(...ram.subarray(target - RAM_BASE, target - RAM_BASE + 4))).toBe(
      'QEMU',
    );
    expect(pages(log.bitmap)).toEqual([0x5, 0x7, 0x8]);
    log.on = false;
    log.bitmap.fill(0);
    wire.onReceive!({ data: f });
    expect(pages(log.bitmap)).toEqual([]);
  });
});
