/** Test helpers: decompile a DTB with dtc (when installed) and index the DTS by node path. */
import { spawnSync } from 'node:child_process';

export const hasDtc = !spawnSync('dtc', ['--version']).error;

/** `dtc -I dtb -O dts`; throws with dtc's stderr when it rejects the blob. */
export function decompile(dtb: Uint8Array): { dts: string; warnings: string } {
  const r = spawnSync('dtc', ['-I', 'dtb', '-O', 'dts', '-'], { input: dtb });
  if (r.status !== 0) throw new Error(`dtc failed: ${r.stderr.toString()}`);
  return { dts: r.stdout.toString(), warnings: r.stderr.toString() };
}

/** node path ("/soc/serial@10000000") -> property name -> value text as dtc prints it. */
export type DtsIndex = Map<string, Map<string, string | null>>;

export function indexDts(dts: string): DtsIndex {
  const nodes: DtsIndex = new Map();
  const stack: string[] = [];
  const path = () => (stack.length === 1 ? '/' : stack.join('/'));
  for (const raw of dts.split('\n')) {
    const line = raw.trim();
    const open = /^([\w,.@+-]+|\/) \{$/.exec(line);
    if (open) {
      stack.push(open[1] === '/' ? '' : open[1]);
      nodes.set(path(), new Map());
      continue;
    }
    if (line === '};') {
      stack.pop();
      continue;
    }
    const prop = /^([#\w,.+?-]+)(?: = (.*))?;$/.exec(line);
    if (prop && stack.length) nodes.get(path())!.set(prop[1], prop[2] ?? null);
  }
  return nodes;
}
