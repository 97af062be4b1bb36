/**
 * `wasmvisor img resize [--shrink] FILE [+|-]SIZE`, as qemu-img: raw images are truncated or
 * extended (sparse), qcow2 images change their virtual size; shrinking needs --shrink, and a
 * qcow2 is only shrunk over clusters that hold nothing.
 */
import { open } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { BlockError } from '../../devices/block/backend.js';
import { probeFormat, Qcow2Image, resizeQcow2 } from '../../devices/block/qcow2/index.js';
import { parseSize, type ImgIo } from './img.js';

export interface ResizeCommand {
  op: 'resize';
  file: string;
  format?: 'raw' | 'qcow2';
  /** Absolute, or relative to the current size. */
  size: { sign: '' | '+' | '-'; bytes: number };
  shrink: boolean;
  quiet: boolean;
}

export const RESIZE_USAGE = `  img resize [-q] [-f FMT] [--shrink] FILE [+|-]SIZE
                      grow an image, or shrink it (--shrink; qcow2: only over unused clusters)
`;

export function parseResizeArgs(argv: string[]): ResizeCommand {
  // "-1G" would read as an option: take the size off the end first, as qemu-img does.
  const last = argv[argv.length - 1];
  const args = last !== undefined && /^[+-]\d/.test(last) ? argv.slice(0, -1) : argv;
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      format: { type: 'string', short: 'f' },
      shrink: { type: 'boolean', default: false },
      quiet: { type: 'boolean', short: 'q', default: false },
    },
  });
  if (args !== argv) positionals.push(last!);
  if (positionals.length !== 2) throw new Error('img resize: give FILE and [+|-]SIZE');
  const [file, spec] = positionals as [string, string];
  const f = values.format;
  if (f !== undefined && f !== 'raw' && f !== 'qcow2') {
    throw new Error(`img resize -f: format "${f}" is not supported (raw, qcow2)`);
  }
  const sign = spec[0] === '+' || spec[0] === '-' ? spec[0] : '';
  return {
    op: 'resize',
    file,
    ...(f !== undefined ? { format: f } : {}),
    size: { sign, bytes: parseSize(spec.slice(sign.length), 'img resize SIZE') },
    shrink: values.shrink ?? false,
    quiet: values.quiet ?? false,
  };
}

function target(c: ResizeCommand, current: number): number {
  const { sign, bytes } = c.size;
  const size = sign === '+' ? current + bytes : sign === '-' ? current - bytes : bytes;
  if (size < 0) throw new Error(`cannot shrink by more than the image's ${current} bytes`);
  return size;
}

async function resizeRaw(c: ResizeCommand): Promise<void> {
  let fh;
  try {
    fh = await open(c.file, 'r+');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new BlockError(
      'io',
      `disk image ${c.file}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
    );
  }
  try {
    const current = (await fh.stat()).size;
    const size = Math.ceil(target(c, current) / 512) * 512;
    if (size < current && !c.shrink) {
      throw new Error('shrinking loses the end of the disk: give --shrink to do it');
    }
    await fh.truncate(size);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

export async function runResize(c: ResizeCommand, io: ImgIo): Promise<number> {
  const fmt = c.format ?? (await probeFormat(c.file));
  if (fmt === 'raw') await resizeRaw(c);
  else {
    const img = await Qcow2Image.open(c.file, { metadataOnly: true, log: (m) => io.err(`${m}\n`) });
    try {
      await img.withMetadata((m) => resizeQcow2(m, target(c, m.header.size), c.shrink));
    } finally {
      await img.close();
    }
  }
  if (!c.quiet) io.out('Image resized.\n');
  return 0;
}
