/**
 * `wasmvisor img`: the qemu-img a user already knows, for the formats the block layer has —
 * `create`, `info`, `check` with qemu-img's options, output and exit statuses (check: 0 clean,
 * 1 not completed, 2 corruptions, 3 leaks, 63 format without checks). Problems are one line
 * naming the file, never a stack trace.
 */
import { open } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import {
  backingChain,
  checkQcow2,
  createQcow2,
  imageInfo,
  probeFormat,
  resolveBacking,
  type ImageFormat,
  type ImageInfo,
  type Preallocation,
} from '../../devices/block/qcow2/index.js';
import { BlockError } from '../../devices/block/backend.js';
import { human } from '../../devices/block/human-size.js';
import {
  parseSnapshotArgs,
  runSnapshot,
  snapshotsJson,
  snapshotTable,
  SNAPSHOT_USAGE,
  type SnapshotCommand,
} from './img-snapshot.js';
import { parseResizeArgs, runResize, RESIZE_USAGE, type ResizeCommand } from './img-resize.js';
import { COMPARE_USAGE, parseCompareArgs, runCompare, type CompareCommand } from './img-compare.js';
import { CONVERT_USAGE, parseConvertArgs, runConvert, type ConvertCommand } from './img-convert.js';
import { MAP_USAGE, parseMapArgs, runMap, type MapCommand } from './img-map.js';
import { COMMIT_USAGE, parseCommitArgs, runCommit, type CommitCommand } from './img-commit.js';
import { REBASE_USAGE, parseRebaseArgs, runRebase, type RebaseCommand } from './img-rebase.js';
import { EncryptOptions, luksOptions, type EncryptSpec } from './img-encrypt.js';
import { createLuks } from '../../devices/block/luks/create.js';
import { luksInfoJson, luksInfoText } from '../../devices/block/luks/inspect.js';

export type ImgCommand =
  | {
      op: 'create';
      format: ImageFormat;
      file: string;
      size?: number;
      clusterSize?: number;
      refcountBits?: number;
      backingFile?: string;
      backingFormat?: ImageFormat;
      /** LUKS (-f luks, or qcow2 with encrypt.format=luks): where the key is, and its options. */
      encrypt?: EncryptSpec;
      preallocation: Preallocation;
      quiet: boolean;
    }
  | { op: 'info'; file: string; format?: ImageFormat; json: boolean; backingChain: boolean }
  | { op: 'check'; file: string; format?: ImageFormat; repair?: 'leaks' | 'all'; json: boolean }
  | SnapshotCommand
  | ResizeCommand
  | ConvertCommand
  | MapCommand
  | CompareCommand
  | CommitCommand
  | RebaseCommand;

export interface ImgOptions {
  kind: 'img';
  cmd: ImgCommand;
}

export const IMG_USAGE = `  img create [-q] [-f raw|qcow2|luks] [-o cluster_size=N,refcount_bits=N] [-b BACKING -F FMT] FILE [SIZE]
                      make an image (SIZE like 10G; default: the backing file's size)
                      -o preallocation=off|metadata|full (metadata: qcow2 only)
                      encrypted: -f luks or -o encrypt.format=luks, the key from --key-file PATH
                      or --object secret,id=ID,file=PATH -o [encrypt.]key-secret=ID
  img info [-f FMT] [--output human|json] [--backing-chain] FILE
                      format, sizes, cluster size, backing chain, dirty/corrupt flags
  img check [-f FMT] [-r leaks|all] [--output human|json] FILE
                      check (and repair) a qcow2's refcounts; exit 0 clean, 2 corrupt, 3 leaks
${SNAPSHOT_USAGE}${RESIZE_USAGE}${CONVERT_USAGE}${COMMIT_USAGE}${REBASE_USAGE}${MAP_USAGE}${COMPARE_USAGE}`;

/** "10G", "64k", "512", "1.5M" (powers of 1024, as qemu-img reads them) into bytes. */
export function parseSize(s: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgtpe]?)(?:i?b)?$/i.exec(s.trim());
  if (!m) throw new Error(`${what}: cannot read "${s}" (try 10G, 512M or a byte count)`);
  const exp = ' kmgtpe'.indexOf((m[2] || ' ').toLowerCase().replace('b', ' '));
  const n = Number(m[1]) * 1024 ** Math.max(exp, 0);
  if (!Number.isSafeInteger(Math.round(n)) || (exp <= 0 && !Number.isInteger(n))) {
    throw new Error(`${what}: "${s}" is not a whole number of bytes`);
  }
  return Math.round(n);
}

export function imageFormat(v: string | undefined, what: string): ImageFormat | undefined {
  if (v === undefined) return undefined;
  if (v !== 'raw' && v !== 'qcow2' && v !== 'luks')
    throw new Error(`${what}: format "${v}" is not supported (raw, qcow2, luks)`);
  return v;
}

/**
 * `-o preallocation=…` for a new image of `format`, refused as qemu-img refuses it (metadata is
 * a qcow2 mode; no mode for LUKS here) and `falloc` refused as not supported.
 */
export function parsePreallocation(v: string, format: ImageFormat, what: string): Preallocation {
  if (v === 'falloc') throw new Error(`${what}: preallocation=falloc is not supported (use full)`);
  if (v !== 'off' && v !== 'metadata' && v !== 'full') {
    throw new Error(`${what}: preallocation "${v}" is not off, metadata or full`);
  }
  if (v === 'off') return v;
  if (format === 'luks') throw new Error(`${what}: preallocation of a luks image is not supported`);
  if (format === 'raw' && v === 'metadata') {
    throw new Error(`${what}: preallocation=metadata is a qcow2 mode (raw has off and full)`);
  }
  return v;
}

/** A new raw image of `size` bytes: a sparse file, or (`full`) one whose every byte is written. */
export async function createRaw(path: string, size: number, prealloc: Preallocation = 'off') {
  let fh;
  try {
    fh = await open(path, 'w');
    if (prealloc === 'full') {
      const zeros = new Uint8Array(Math.min(size, 1 << 20));
      for (let at = 0; at < size; at += zeros.length) {
        await fh.write(zeros, 0, Math.min(zeros.length, size - at), at);
      }
    }
    await fh.truncate(size);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new BlockError(
      'io',
      `creating ${path}: ${err.code === 'ENOENT' ? 'no such directory' : err.message}`,
    );
  } finally {
    await fh?.close();
  }
}

export const OUTPUT = (v: string | undefined): boolean => {
  if (v === undefined || v === 'human') return false;
  if (v === 'json') return true;
  throw new Error(`--output: "${v}" is not human or json`);
};

/** Parses `img …` (argv after "img"); throws an Error whose message is the usage problem. */
export function parseImgArgs(argv: string[]): ImgOptions {
  const [op, ...rest] = argv;
  if (op === 'snapshot') return { kind: 'img', cmd: parseSnapshotArgs(rest) };
  if (op === 'resize') return { kind: 'img', cmd: parseResizeArgs(rest) };
  if (op === 'create') {
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        format: { type: 'string', short: 'f' },
        options: { type: 'string', short: 'o', multiple: true },
        backing: { type: 'string', short: 'b' },
        'backing-format': { type: 'string', short: 'F' },
        quiet: { type: 'boolean', short: 'q', default: false },
        object: { type: 'string', multiple: true },
        'key-file': { type: 'string' },
      },
    });
    const format = imageFormat(values.format, 'img create -f') ?? 'raw';
    const enc = new EncryptOptions();
    let backingFile = values.backing;
    let backingFormat = imageFormat(values['backing-format'], 'img create -F');
    let clusterSize: number | undefined;
    let refcountBits: number | undefined;
    let size: number | undefined;
    let preallocation: Preallocation = 'off';
    for (const kv of (values.options ?? []).flatMap((o) => o.split(','))) {
      if (kv === '') continue;
      const [k, v] = kv.split('=', 2) as [string, string | undefined];
      if (v === undefined) throw new Error(`img create -o: "${kv}" needs a value`);
      if (enc.take(format, k, v)) continue;
      if (k === 'cluster_size') clusterSize = parseSize(v, 'cluster_size');
      else if (k === 'refcount_bits') refcountBits = Number(v);
      else if (k === 'backing_file') backingFile = v;
      else if (k === 'backing_fmt') backingFormat = imageFormat(v, 'backing_fmt');
      else if (k === 'size') size = parseSize(v, 'size');
      else if (k === 'preallocation') preallocation = parsePreallocation(v, format, 'img create');
      else throw new Error(`img create -o: option "${k}" is not supported`);
    }
    if (format !== 'qcow2' && (clusterSize !== undefined || refcountBits !== undefined)) {
      throw new Error('img create: cluster_size and refcount_bits are qcow2 options');
    }
    if (format !== 'qcow2' && backingFile)
      throw new Error(`img create: ${format} images have no backing file`);
    const encrypt = enc.resolve(format, values.object ?? [], values['key-file']);
    if (backingFile && !backingFormat) {
      // qemu-img's rule too: probing the backing file would trust whatever its first bytes say.
      throw new Error('img create: a backing file needs its format (-F raw|qcow2)');
    }
    if (positionals.length < 1 || positionals.length > 2) {
      throw new Error('img create: give FILE and SIZE (SIZE may be left out with -b)');
    }
    const [file, sizeArg] = positionals as [string, string | undefined];
    if (sizeArg !== undefined) size = parseSize(sizeArg, 'img create SIZE');
    if (size === undefined && !backingFile) throw new Error(`img create ${file}: no size given`);
    return {
      kind: 'img',
      cmd: {
        op: 'create',
        format,
        file,
        size,
        clusterSize,
        refcountBits,
        backingFile,
        backingFormat,
        ...(encrypt ? { encrypt } : {}),
        preallocation,
        quiet: values.quiet ?? false,
      },
    };
  }
  if (op === 'info' || op === 'check') {
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        format: { type: 'string', short: 'f' },
        output: { type: 'string' },
        'backing-chain': { type: 'boolean', default: false },
        repair: { type: 'string', short: 'r' },
      },
    });
    if (positionals.length !== 1) throw new Error(`img ${op}: give exactly one FILE`);
    const file = positionals[0]!;
    const format = imageFormat(values.format, `img ${op} -f`);
    const json = OUTPUT(values.output);
    if (op === 'info') {
      if (values.repair !== undefined) throw new Error('img info: -r is an option of img check');
      return {
        kind: 'img',
        cmd: { op, file, format, json, backingChain: values['backing-chain'] ?? false },
      };
    }
    if (values['backing-chain']) throw new Error('img check: --backing-chain is not supported');
    const r = values.repair;
    if (r !== undefined && r !== 'leaks' && r !== 'all') {
      throw new Error(`img check -r: "${r}" is not leaks or all`);
    }
    return { kind: 'img', cmd: { op, file, format, repair: r, json } };
  }
  if (op === 'convert') return { kind: 'img', cmd: parseConvertArgs(rest) };
  if (op === 'map') return { kind: 'img', cmd: parseMapArgs(rest) };
  if (op === 'compare') return { kind: 'img', cmd: parseCompareArgs(rest) };
  if (op === 'commit') return { kind: 'img', cmd: parseCommitArgs(rest) };
  if (op === 'rebase') return { kind: 'img', cmd: parseRebaseArgs(rest) };
  throw new Error(
    op === undefined
      ? 'img: give a subcommand (create, info, check, convert, snapshot, commit, rebase, resize, map, compare)'
      : `img: unknown subcommand "${op}"`,
  );
}

/** qemu-img info --output json's key names. */
function infoJson(i: ImageInfo): Record<string, unknown> {
  const o: Record<string, unknown> = {
    ...(i.snapshots?.length ? { snapshots: snapshotsJson(i.snapshots) } : {}),
    'virtual-size': i.virtualSize,
    filename: i.filename,
    format: i.format,
    'actual-size': i.actualSize,
  };
  if (i.format === 'qcow2') {
    o['cluster-size'] = i.clusterSize;
    if (i.backingFilename !== undefined) {
      o['backing-filename'] = i.backingFilename;
      o['full-backing-filename'] = i.fullBackingFilename;
      if (i.backingFormat !== undefined) o['backing-filename-format'] = i.backingFormat;
    }
    o['encrypted'] = i.encrypted || undefined;
    o['format-specific'] = {
      type: 'qcow2',
      data: {
        compat: i.compat,
        'compression-type': i.compressionType,
        'lazy-refcounts': i.lazyRefcounts,
        'refcount-bits': i.refcountBits,
        ...(i.encrypt ? { encrypt: { ...luksInfoJson(i.encrypt), format: 'luks' } } : {}),
        corrupt: i.corrupt,
        'extended-l2': false,
      },
    };
    o['dirty-flag'] = i.dirty;
  } else if (i.encrypt) {
    o['encrypted'] = true;
    o['format-specific'] = { type: 'luks', data: luksInfoJson(i.encrypt) };
    o['dirty-flag'] = false;
  } else {
    o['dirty-flag'] = false;
  }
  return o;
}

function infoText(i: ImageInfo): string {
  const lines = [
    `image: ${i.filename}`,
    `file format: ${i.format}`,
    `virtual size: ${human(i.virtualSize)} (${i.virtualSize} bytes)`,
    `disk size: ${human(i.actualSize)}`,
  ];
  if (i.format === 'qcow2') {
    lines.push(`cluster_size: ${i.clusterSize}`);
    if (i.backingFilename !== undefined) {
      const full =
        i.fullBackingFilename !== i.backingFilename
          ? ` (actual path: ${i.fullBackingFilename})`
          : '';
      lines.push(`backing file: ${i.backingFilename}${full}`);
      if (i.backingFormat) lines.push(`backing file format: ${i.backingFormat}`);
    }
    if (i.encrypted) lines.push('encrypted: yes');
    if (i.snapshots?.length) lines.push(`Snapshot list:\n${snapshotTable(i.snapshots).trimEnd()}`);
    lines.push(
      'Format specific information:',
      `    compat: ${i.compat}`,
      `    compression type: ${i.compressionType}`,
      `    lazy refcounts: ${i.lazyRefcounts}`,
      `    refcount bits: ${i.refcountBits}`,
      ...(i.encrypt
        ? ['    encrypt:', '        format: luks', ...luksInfoText(i.encrypt, '        ')]
        : []),
      `    corrupt: ${i.corrupt}`,
      `    dirty: ${i.dirty}`,
    );
  } else if (i.encrypt) {
    lines.push(
      'encrypted: yes',
      'Format specific information:',
      ...luksInfoText(i.encrypt, '    '),
    );
  }
  return lines.join('\n') + '\n';
}

export interface ImgIo {
  out: (s: string) => void;
  err: (s: string) => void;
  /** Whether `out` is a terminal (progress bars); default: process.stdout.isTTY. */
  tty?: boolean;
}

const stdio: ImgIo = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
};

async function create(c: Extract<ImgCommand, { op: 'create' }>, io: ImgIo): Promise<number> {
  let size = c.size;
  const encrypt = c.encrypt ? await luksOptions(c.encrypt) : undefined;
  if (c.format === 'luks') {
    size = Math.ceil(size! / 512) * 512;
    await createLuks(c.file, size, encrypt!).catch((e: unknown) => {
      if (e instanceof BlockError) throw e;
      throw new BlockError('io', `creating ${c.file}: ${(e as Error).message}`);
    });
  } else if (c.format === 'raw') {
    size = Math.ceil(size! / 512) * 512;
    await createRaw(c.file, size, c.preallocation);
  } else {
    if (c.backingFile) {
      // The backing file must be there and be what -F says (a qcow2 named raw would hide its chain).
      const p = resolveBacking(c.file, c.backingFile);
      const found = await probeFormat(p).catch((e: unknown) => {
        throw new BlockError(
          'io',
          `creating ${c.file}: backing file ${c.backingFile}: ${(e as Error).message.replace(/^disk image [^:]*: /, '')}`,
        );
      });
      if (found !== c.backingFormat) {
        throw new BlockError(
          'io',
          `creating ${c.file}: backing file ${c.backingFile} is ${found}, not ${c.backingFormat}`,
        );
      }
    }
    try {
      await createQcow2(c.file, {
        size,
        clusterSize: c.clusterSize,
        refcountBits: c.refcountBits,
        backingFile: c.backingFile,
        backingFormat: c.backingFormat,
        encrypt,
        preallocation: c.preallocation,
      });
    } catch (e) {
      if (e instanceof BlockError) throw e;
      const err = e as NodeJS.ErrnoException;
      throw new BlockError(
        'io',
        `creating ${c.file}: ${err.code === 'ENOENT' ? 'no such directory' : err.message}`,
      );
    }
    size = (await imageInfo(c.file, 'qcow2')).virtualSize;
  }
  if (!c.quiet) {
    const extra =
      c.format === 'qcow2'
        ? ` cluster_size=${c.clusterSize ?? 65536}` +
          (c.backingFile ? ` backing_file=${c.backingFile} backing_fmt=${c.backingFormat}` : '') +
          (c.encrypt ? ' encrypt.format=luks' : '') +
          ` refcount_bits=${c.refcountBits ?? 16}`
        : '';
    // qemu-img names a preallocation mode only when there is one.
    const pre = c.preallocation !== 'off' ? ` preallocation=${c.preallocation}` : '';
    io.out(`Formatting '${c.file}', fmt=${c.format}${extra} size=${size}${pre}\n`);
  }
  return 0;
}

async function info(c: Extract<ImgCommand, { op: 'info' }>, io: ImgIo): Promise<number> {
  const chain = c.backingChain
    ? await backingChain(c.file, c.format)
    : [await imageInfo(c.file, c.format)];
  if (c.json) {
    const j = chain.map(infoJson);
    io.out(JSON.stringify(c.backingChain ? j : j[0], null, 4) + '\n');
  } else {
    io.out(chain.map(infoText).join('\n'));
  }
  return 0;
}

async function check(c: Extract<ImgCommand, { op: 'check' }>, io: ImgIo): Promise<number> {
  const fmt = c.format ?? (await probeFormat(c.file));
  if (fmt !== 'qcow2') {
    io.err(`wasmvisor: img check ${c.file}: the ${fmt} format has no metadata to check\n`);
    return 63;
  }
  const r = await checkQcow2(c.file, c.repair);
  const status = r.corruptions > 0 ? 2 : r.leaks > 0 ? 3 : 0;
  if (c.json) {
    io.out(
      JSON.stringify(
        {
          filename: c.file,
          format: 'qcow2',
          'check-errors': 0,
          corruptions: r.corruptions,
          leaks: r.leaks,
          'corruptions-fixed': c.repair ? r.found.corruptions - r.corruptions : undefined,
          'leaks-fixed': c.repair ? r.found.leaks - r.leaks : undefined,
          'image-end-offset': r.imageEndOffset,
        },
        null,
        4,
      ) + '\n',
    );
    return status;
  }
  const lines: string[] = [...r.messages.map((m) => `ERROR ${m}`)];
  if (c.repair && r.fixed > 0) {
    lines.push(
      'The following inconsistencies were found and repaired:',
      '',
      `    ${r.found.leaks - r.leaks} leaked clusters`,
      `    ${r.found.corruptions - r.corruptions} corruptions`,
      '',
      'Double checking the fixed image now...',
    );
  }
  if (status === 0) lines.push('No errors were found on the image.');
  if (r.corruptions > 0) {
    lines.push(
      '',
      `${r.corruptions} errors were found on the image.`,
      'Data may be corrupted, or further writes to the image may corrupt it.',
    );
  }
  if (r.leaks > 0) {
    lines.push(
      '',
      `${r.leaks} leaked clusters were found on the image.`,
      'This means waste of disk space, but no harm to data.',
    );
  }
  if (r.dirty) lines.push('The image is dirty (lazy refcounts): opening it read-write repairs it.');
  if (r.corrupt) lines.push('The image is marked corrupt.');
  lines.push(`Image end offset: ${r.imageEndOffset}`);
  io.out(lines.join('\n') + '\n');
  return status;
}

/** Runs one `img` subcommand; the exit status as qemu-img would give it. */
export async function runImg(o: ImgOptions, io: ImgIo = stdio): Promise<number> {
  try {
    switch (o.cmd.op) {
      case 'create':
        return await create(o.cmd, io);
      case 'info':
        return await info(o.cmd, io);
      case 'check':
        return await check(o.cmd, io);
      case 'snapshot':
        return await runSnapshot(o.cmd, io);
      case 'resize':
        return await runResize(o.cmd, io);
      case 'convert':
        return await runConvert(o.cmd, io);
      case 'map':
        return await runMap(o.cmd, io);
      case 'compare':
        return await runCompare(o.cmd, io);
      case 'commit':
        return await runCommit(o.cmd, io);
      case 'rebase':
        return await runRebase(o.cmd, io);
    }
  } catch (e) {
    // BlockErrors name the file already; anything else gets the file put in front of it.
    const msg = e instanceof BlockError ? e.message : `${o.cmd.file}: ${(e as Error).message}`;
    io.err(`wasmvisor: img ${o.cmd.op}: ${msg}\n`);
    return 1;
  }
}
