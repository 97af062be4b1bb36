import { describe, expect, it } from 'vitest';
import { SifiveTest, type ShutdownEvent } from '../../../devices/platform/sifive-test.js';
import { logSink } from './helpers.js';

function setup() {
  const events: ShutdownEvent[] = [];
  const log = logSink();
  const dev = new SifiveTest((e) => events.push(e), log.sink);
  return { dev, events, log };
}

describe('SiFive test finisher', () => {
  it('reports poweroff, reset and failure with its code', () => {
    const { dev, events } = setup();
    dev.write(0, 4, 0x5555);
    dev.write(0, 4, 0x7777);
    dev.write(0, 4, (42 << 16) | 0x3333);
    dev.write(0, 4, (0xffff << 16) | 0x3333);
    expect(events).toEqual([
      { kind: 'poweroff', code: 0 },
      { kind: 'reset', code: 0 },
      { kind: 'fail', code: 42 },
      { kind: 'fail', code: 0xffff },
    ]);
    expect(dev.stats.shutdowns).toBe(4);
  });

  it('takes a 2-byte command without a code, as QEMU does', () => {
    const { dev, events } = setup();
    dev.write(0, 2, 0x3333);
    expect(events).toEqual([{ kind: 'fail', code: 0 }]);
  });

  it('ignores unknown commands, other offsets and byte writes', () => {
    const { dev, events } = setup();
    dev.write(0, 4, 0x1234);
    dev.write(0, 4, 0x5555_0000);
    dev.write(4, 4, 0x5555);
    dev.write(0xffc, 4, 0x7777);
    dev.write(0, 1, 0x55);
    expect(events).toEqual([]);
    expect(dev.read(0, 4)).toBe(0);
    expect(dev.stats.guestErrors).toBe(5);
  });

  it('has a (trivial) versioned state', () => {
    const { dev } = setup();
    expect(dev.saveState()).toEqual({ version: 1 });
    expect(() => dev.restoreState({ version: 2 } as never)).toThrow(/version/);
  });
});
