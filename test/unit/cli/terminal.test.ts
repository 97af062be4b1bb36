import { describe, it, expect } from 'vitest';
import { EscapeDecoder } from '../../../main/cli/terminal.js';

function decoder() {
  const input: number[] = [];
  let quits = 0;
  let help = '';
  const d = new EscapeDecoder({
    input: (b) => input.push(...b),
    quit: () => quits++,
    help: (t) => (help += t),
  });
  return { d, input, quits: () => quits, help: () => help };
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('console escape prefix (Ctrl-A)', () => {
  it('passes ordinary keys through unchanged', () => {
    const t = decoder();
    t.d.feed(bytes('ls -l\r'));
    expect(Buffer.from(t.input).toString()).toBe('ls -l\r');
  });

  it('quits on Ctrl-A x and ignores what follows', () => {
    const t = decoder();
    t.d.feed(Uint8Array.of(0x61, 0x01, 0x78, 0x62));
    expect(t.quits()).toBe(1);
    expect(t.input).toEqual([0x61]);
  });

  it('recognises the prefix split across reads', () => {
    const t = decoder();
    t.d.feed(Uint8Array.of(0x01));
    expect(t.quits()).toBe(0);
    t.d.feed(Uint8Array.of(0x58));
    expect(t.quits()).toBe(1);
  });

  it('sends a literal Ctrl-A for Ctrl-A Ctrl-A, and shows help for Ctrl-A h', () => {
    const t = decoder();
    t.d.feed(Uint8Array.of(0x01, 0x01, 0x63, 0x01, 0x68));
    expect(t.input).toEqual([0x01, 0x63]);
    expect(t.help()).toContain('quit');
  });
});
