/**
 * `wasmvisor img map [-f FMT] [--key-file PATH] [--output human|json] FILE`: where each run of
 * the guest's bytes comes from — which layer of the backing chain, data or zeros, and at which offset of that
 * layer's file — in qemu-img's two forms (the JSON one line per merged extent).
 */
import { parseArgs } from 'node:util';
import { blockStatus, type Extent } from '../../devices/block/qcow2/block-status.js';
import { openImage, type ImageFormat } from '../../devices/block/qcow2/index.js';
import { keyOptions } from './img-convert.js';
import { imageFormat, OUTPUT, type ImgIo } from './img.js';

export interface MapCommand {
  op: 'map';
  file: string;
  format?: ImageFormat;
  json: boolean;
  /** The passphrase file of an encrypted image. */
  keyFile?: string;
}

export const MAP_USAGE = `  img map [-f FMT] [--key-file PATH] [--output human|json] FILE
                      which layer and file offset each run of the disk comes from
`;

export function parseMapArgs(args: string[]): MapCommand {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      format: { type: 'string', short: 'f' },
      output: { type: 'string' },
      'key-file': { type: 'string' },
    },
  });
  if (positionals.length !== 1) throw new Error('img map: give exactly one FILE');
  return {
    op: 'map',
    file: positionals[0]!,
    format: imageFormat(values.format, 'img map -f'),
    json: OUTPUT(values.output),
    keyFile: values['key-file'],
  };
}

/** One extent as qemu-img 7 prints it (key order and spacing included). */
function jsonLine(e: Extent): string {
  const off = e.offset !== undefined ? `, "offset": ${e.offset}` : '';
  return (
    `{ "start": ${e.start}, "length": ${e.length}, "depth": ${e.depth},` +
    ` "present": ${e.present}, "zero": ${e.zero}, "data": ${e.data}${off}}`
  );
}

const hex = (n: number): string => (n === 0 ? '0' : `0x${n.toString(16)}`);

export function formatMap(extents: Extent[], json: boolean): string {
  if (json) return `[${extents.map(jsonLine).join(',\n')}]\n`;
  if (extents.some((e) => e.data && e.offset === undefined)) {
    // The human form cannot say where compressed or encrypted data is: qemu-img refuses too.
    throw new Error('File contains external, encrypted or compressed clusters.');
  }
  const row = (a: string, b: string, c: string, d: string) =>
    `${a.padEnd(16)}${b.padEnd(16)}${c.padEnd(16)}${d}\n`;
  let s = row('Offset', 'Length', 'Mapped to', 'File');
  for (const e of extents) {
    if (e.data && e.offset !== undefined)
      s += row(hex(e.start), hex(e.length), hex(e.offset), e.file);
  }
  return s;
}

export async function runMap(c: MapCommand, io: ImgIo): Promise<number> {
  const img = await openImage(c.file, c.format, {
    readOnly: true,
    ...(await keyOptions(c.keyFile)),
  });
  try {
    io.out(formatMap(await blockStatus(img, 0, img.size), c.json));
    return 0;
  } finally {
    await img.close();
  }
}
