/**
 * What the `img` tests share: running our `img` subcommands in-process (output captured), and
 * qemu-img / qemu-io, the judges, as child processes.
 */
import { spawnSync } from 'node:child_process';
import { parseImgArgs, runImg, type ImgIo } from '../../../main/cli/img.js';

export const haveQemuImg = spawnSync('qemu-img', ['--version']).status === 0;

export async function img(
  ...argv: string[]
): Promise<{ status: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: ImgIo = { out: (s) => (out += s), err: (s) => (err += s), tty: false };
  const status = await runImg(parseImgArgs(argv), io);
  return { status, out, err };
}

/**
 * How qemu-img and qemu-io name one of our qcow2 images: the path, or, when it is encrypted,
 * the key file as a secret object and the image as --image-opts.
 */
export function qemuImageArgs(img: string, keyFile?: string): string[] {
  return keyFile
    ? [
        '--object',
        `secret,id=s0,file=${keyFile}`,
        '--image-opts',
        `driver=qcow2,file.filename=${img},encrypt.key-secret=s0`,
      ]
    : [img];
}

export function qemuImg(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync('qemu-img', args, { encoding: 'utf-8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

/** Runs qemu-io commands (`-c` each) on an image; throws with its output if it fails. */
export function qemuIo(file: string, ...cmds: string[]): void {
  const r = spawnSync('qemu-io', [...cmds.flatMap((c) => ['-c', c]), file], { encoding: 'utf-8' });
  if (r.status !== 0 || /error|failed/i.test(r.stdout + r.stderr)) {
    throw new Error(`qemu-io ${file}: ${r.stdout}${r.stderr}`);
  }
}

/**
 * qemu-img for a command that makes a LUKS key slot (create or convert into an encrypted image).
 * Its PBKDF2 benchmark reads the thread's CPU time and gives up when one round measures 0 ms
 * ("Unable to get accurate CPU usage"), which a loaded host does now and then, several times in
 * a row: retried up to 30 times, waiting a little longer before each.
 */
export function qemuImgMakingKeySlot(...args: string[]): { status: number | null; out: string } {
  let r = qemuImg(...args);
  for (let i = 1; i < 30 && r.out.includes('accurate CPU usage'); i++) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.min(50 * i, 500));
    r = qemuImg(...args);
  }
  return r;
}
