/**
 * User workloads typed at a busybox shell prompt, the same command in every guest whatever its
 * ISA (bench/browser-emulator.ts): each prints one end-marker line carrying its result, so the
 * host times it from sending the line to the marker and can check that every guest did the same
 * work (same busybox version, same answer).
 */

export interface ShellWorkload {
  /** Short name for tables. */
  name: string;
  /** What it does, for the bench's header. */
  what: string;
  /** Run once after boot, untimed (inputs the timed command reads). */
  setup?: string;
  /** The timed shell command; its standard output's last line is its result. */
  command: string;
}

/**
 * The end marker: `END:` + result, a whole line (up to its newline: the console delivers it in
 * pieces, and a line cut short would be a wrong result); typed split as `EN""D:` so the echo of
 * the typed line never matches.
 */
const MARKER = /^END:([^\r\n]*)\r?\n/m;

/** The line to type for `command`: runs it, then prints the marker with its last output line. */
export function markedLine(command: string): string {
  return `r=$({ ${command}; } 2>&1 | tail -n 1); echo "EN""D:$r"`;
}

/** The result in the first end marker in `text`, or undefined when none is there yet. */
export function parseMarker(text: string): string | undefined {
  return MARKER.exec(text)?.[1];
}

/** The marker as a pattern to wait for. */
export const MARKER_PATTERN = MARKER;

/**
 * The workloads at `scale` (1: each takes a few seconds in an interpreter). Sizes are whole
 * numbers so every guest gets exactly the same input.
 */
export function shellWorkloads(scale = 1): ShellWorkload[] {
  const n = (base: number): number => Math.max(1, Math.round(base * scale));
  const loop = n(20_000);
  const md5Blocks = n(256); // 64 KiB each: 16 MiB at scale 1
  const gzipLines = n(100_000);
  const sortLines = n(50_000);
  const awkIters = n(200_000);
  return [
    {
      name: 'sh loop',
      what: `busybox sh: ${loop} iterations of a while loop with $((i+1))`,
      command: `i=0; while [ $i -lt ${loop} ]; do i=$((i+1)); done; echo $i`,
    },
    {
      name: 'md5sum',
      what: `md5sum of ${(md5Blocks * 64) / 1024} MiB from /dev/zero (dd bs=64k)`,
      command: `dd if=/dev/zero bs=65536 count=${md5Blocks} 2>/dev/null | md5sum`,
    },
    {
      name: 'gzip -1',
      what: `gzip -1 of seq 1 ${gzipLines} (a file in tmpfs, written untimed)`,
      setup: `seq 1 ${gzipLines} > /tmp/gzip.in`,
      command: `gzip -1 -c /tmp/gzip.in | wc -c`,
    },
    {
      name: 'sort',
      what: `seq 1 ${sortLines} | sort (lexical), md5sum of the output`,
      command: `seq 1 ${sortLines} | sort | md5sum`,
    },
    {
      name: 'awk',
      what: `awk arithmetic loop, ${awkIters} iterations`,
      command: `awk 'BEGIN { s = 0; for (i = 0; i < ${awkIters}; i++) s += (i * 7) % 13; print s }'`,
    },
  ];
}

/** The median (the upper one of an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
}

/** `theirs / ours` as "1.23×" (>1: ours took less), or "-" when either is missing. */
export function ratio(theirs: number | undefined, ours: number | undefined): string {
  if (theirs === undefined || ours === undefined || !(theirs > 0) || !(ours > 0)) return '-';
  return `${(theirs / ours).toFixed(2)}×`;
}
