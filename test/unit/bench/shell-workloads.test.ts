// The workloads bench/browser-emulator.ts types into each guest's busybox shell: the line it
// types must run in a POSIX shell and end in a marker the host finds (and the echo of the typed
// line must not look like one), and each workload must compute what it says. Run here in the
// host's /bin/sh at a small scale, with the answers worked out independently in JS.

import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  markedLine,
  median,
  parseMarker,
  ratio,
  shellWorkloads,
} from '../../../bench/shell-workloads.js';

/** Runs `line` in /bin/sh as a guest shell would, and returns what it printed. */
function sh(line: string): string {
  const r = spawnSync('/bin/sh', ['-c', line], { encoding: 'latin1', timeout: 20_000 });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

describe('end marker', () => {
  it('is found after the command runs, with its last output line, and not in the typed line', () => {
    const line = markedLine('echo first; echo "the answer"');
    expect(parseMarker(`wasmvisor:~# ${line}\r\n`)).toBeUndefined();
    expect(parseMarker(sh(line))).toBe('the answer');
  });

  it('carries a result printed on standard error (an applet failing shows up as a result)', () => {
    expect(parseMarker(sh(markedLine('echo oops >&2')))).toBe('oops');
  });

  it('takes a CR before the line end (serial consoles send CRLF)', () => {
    expect(parseMarker('x\r\nEND:42\r\n')).toBe('42');
  });

  it('waits for the end of the marker line (output arrives in pieces)', () => {
    expect(parseMarker('x\r\nEND:b3b79a06')).toBeUndefined();
    expect(parseMarker('x\r\nEND:b3b79a06  -\r')).toBeUndefined();
    expect(parseMarker('x\r\nEND:b3b79a06  -\r\n')).toBe('b3b79a06  -');
  });
});

describe('workloads at a small scale in /bin/sh', () => {
  const scale = 0.01;
  const w = Object.fromEntries(shellWorkloads(scale).map((x) => [x.name, x]));
  const run = (name: string): string => {
    const x = w[name]!;
    if (x.setup) sh(x.setup);
    return parseMarker(sh(markedLine(x.command)))!;
  };

  it('sh loop counts to its size', () => {
    expect(run('sh loop')).toBe('200');
  });

  it('md5sum hashes 64 KiB blocks of zeros', () => {
    const zeros = Buffer.alloc(Math.round(256 * scale) * 65536);
    expect(run('md5sum').split(/\s+/)[0]).toBe(createHash('md5').update(zeros).digest('hex'));
  });

  it('gzip -1 compresses the seq file it wrote, to fewer bytes than the file', () => {
    const bytes = Number(run('gzip -1'));
    sh('rm -f /tmp/gzip.in');
    const input = Array.from({ length: 1000 }, (_, i) => `${i + 1}\n`).join('').length;
    expect(bytes).toBeGreaterThan(100);
    expect(bytes).toBeLessThan(input);
  });

  it('sort sorts seq output lexically', () => {
    const lines = Array.from({ length: 500 }, (_, i) => String(i + 1)).sort();
    const want = createHash('md5')
      .update(lines.join('\n') + '\n')
      .digest('hex');
    expect(run('sort').split(/\s+/)[0]).toBe(want);
  });

  it('awk sums its arithmetic loop', () => {
    let s = 0;
    for (let i = 0; i < 2000; i++) s += (i * 7) % 13;
    expect(run('awk')).toBe(String(s));
  });
});

describe('statistics', () => {
  it('median takes the middle of unsorted values, the upper one of an even count', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(3);
    expect(median([])).toBeNaN();
  });

  it('ratio is theirs over ours, and "-" without both', () => {
    expect(ratio(3, 1.5)).toBe('2.00×');
    expect(ratio(1, 4)).toBe('0.25×');
    expect(ratio(undefined, 1)).toBe('-');
    expect(ratio(1, NaN)).toBe('-');
  });
});
