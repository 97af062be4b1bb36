/**
 * A problem with a user-supplied boot file (firmware, kernel, initrd). The message names the
 * file and says what is wrong, so front ends print `err.message` and no stack trace.
 */
export class BootError extends Error {
  constructor(
    /** The file as the user named it. */
    readonly file: string,
    /** What is wrong with it, in words. */
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = 'BootError';
  }
}
