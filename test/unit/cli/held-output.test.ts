// The guest's console output while the monitor has the terminal waits and follows in order when
// the console comes back; past the limit the oldest bytes go and the flush says how many.
import { describe, it, expect } from 'vitest';
import { HeldOutput } from '../../../main/cli/held-output.js';

function sink(): { out: string[]; write: (b: Uint8Array | string) => void } {
  const out: string[] = [];
  return {
    out,
    write: (b) => out.push(typeof b === 'string' ? b : Buffer.from(b).toString('latin1')),
  };
}

describe('HeldOutput', () => {
  it('holds the guest output and prints it in order on flush, once', () => {
    const s = sink();
    const h = new HeldOutput(s.write);
    const buf = Buffer.from('\x1b[6n');
    h.hold(buf);
    buf.fill(0); // the caller may reuse its buffer: what was held must not change
    h.hold('[ 1.09] eth0: link becomes ready\r\n');
    expect(s.out).toEqual([]);
    h.flush();
    expect(s.out.join('')).toBe('\x1b[6n[ 1.09] eth0: link becomes ready\r\n');
    h.flush();
    expect(s.out.join('')).toBe('\x1b[6n[ 1.09] eth0: link becomes ready\r\n');
  });

  it('keeps the newest bytes up to its limit and says how many it dropped', () => {
    const s = sink();
    const h = new HeldOutput(s.write, 10);
    h.hold('abcdefgh');
    h.hold('ijklmnop');
    h.flush();
    expect(s.out.join('')).toBe(
      '[wasmvisor: 6 bytes of console output dropped while in the monitor]\r\nghijklmnop',
    );
  });
});
