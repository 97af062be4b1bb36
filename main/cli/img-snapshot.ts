/**
 * `wasmvisor img snapshot -c NAME | -l | -a NAME | -d NAME FILE`: qcow2 internal snapshots as
 * qemu-img manages them (disk-only), with qemu-img's listing — also what `img info` shows.
 */
import { parseArgs } from 'node:util';
import {
  applySnapshot,
  createSnapshot,
  deleteSnapshot,
  imageInfo,
  probeFormat,
  Qcow2Image,
  type SnapshotInfo,
} from '../../devices/block/qcow2/index.js';
import { human } from '../../devices/block/human-size.js';
import type { ImgIo } from './img.js';

export interface SnapshotCommand {
  op: 'snapshot';
  file: string;
  action: 'create' | 'list' | 'apply' | 'delete';
  name?: string;
  quiet: boolean;
}

export const SNAPSHOT_USAGE = `  img snapshot [-q] -c NAME | -l | -a NAME | -d NAME FILE
                      create, list, apply (revert to) or delete an internal snapshot of a qcow2
`;

export function parseSnapshotArgs(argv: string[]): SnapshotCommand {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      create: { type: 'string', short: 'c' },
      list: { type: 'boolean', short: 'l', default: false },
      apply: { type: 'string', short: 'a' },
      delete: { type: 'string', short: 'd' },
      format: { type: 'string', short: 'f' },
      quiet: { type: 'boolean', short: 'q', default: false },
    },
  });
  const given = (['create', 'apply', 'delete'] as const).filter((k) => values[k] !== undefined);
  const actions = [...given, ...(values.list ? (['list'] as const) : [])];
  if (actions.length !== 1)
    throw new Error('img snapshot: give one of -c NAME, -l, -a NAME, -d NAME');
  if (values.format !== undefined && values.format !== 'qcow2') {
    throw new Error(`img snapshot: the ${values.format} format has no internal snapshots`);
  }
  if (positionals.length !== 1) throw new Error('img snapshot: give exactly one FILE');
  const action = actions[0];
  return {
    op: 'snapshot',
    file: positionals[0]!,
    action,
    ...(action !== 'list' ? { name: values[action] } : {}),
    quiet: values.quiet ?? false,
  };
}

const two = (n: number) => String(n).padStart(2, '0');

/** qemu-img's listing: header and one line per snapshot (dates in local time). */
export function snapshotTable(snaps: readonly SnapshotInfo[]): string {
  const pad = (s: string, n: number) => s.padEnd(n);
  const right = (s: string, n: number) => s.padStart(n);
  const lines = [pad('ID', 10) + pad('TAG', 17) + right('VM SIZE', 8) + right('DATE', 20)];
  lines[0] += right('VM CLOCK', 13) + right('ICOUNT', 11);
  for (const s of snaps) {
    const d = new Date(s.dateSec * 1000);
    const date =
      `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ` +
      `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
    const ms = Math.floor(s.vmClockNsec / 1e6);
    const clock =
      `${two(Math.floor(ms / 3_600_000))}:${two(Math.floor(ms / 60_000) % 60)}:` +
      `${two(Math.floor(ms / 1000) % 60)}.${String(ms % 1000).padStart(3, '0')}`;
    lines.push(
      `${pad(s.id, 9)} ${pad(s.name, 16)} ${right(human(s.vmStateSize), 8)}${right(date, 20)}` +
        `${right(clock, 13)}${right(s.icount === undefined ? '' : String(s.icount), 11)}`,
    );
  }
  return lines.join('\n') + '\n';
}

/** qemu-img info --output json's "snapshots" entries. */
export function snapshotsJson(snaps: readonly SnapshotInfo[]): Record<string, unknown>[] {
  return snaps.map((s) => ({
    ...(s.icount !== undefined ? { icount: s.icount } : {}),
    'vm-clock-nsec': s.vmClockNsec % 1e9,
    name: s.name,
    'date-sec': s.dateSec,
    'date-nsec': s.dateNsec,
    'vm-clock-sec': Math.floor(s.vmClockNsec / 1e9),
    id: s.id,
    'vm-state-size': s.vmStateSize,
  }));
}

export async function runSnapshot(c: SnapshotCommand, io: ImgIo): Promise<number> {
  if ((await probeFormat(c.file)) !== 'qcow2') {
    throw new Error('the raw format has no internal snapshots (use qcow2)');
  }
  if (c.action === 'list') {
    const snaps = (await imageInfo(c.file, 'qcow2')).snapshots ?? [];
    if (snaps.length > 0) io.out(`Snapshot list:\n${snapshotTable(snaps)}`);
    return 0;
  }
  const img = await Qcow2Image.open(c.file, { metadataOnly: true, log: (m) => io.err(`${m}\n`) });
  try {
    const name = c.name!;
    const op =
      c.action === 'create'
        ? createSnapshot
        : c.action === 'apply'
          ? applySnapshot
          : deleteSnapshot;
    await img.withMetadata((m) => op(m, name));
  } finally {
    await img.close();
  }
  return 0;
}
