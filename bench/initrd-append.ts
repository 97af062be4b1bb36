/**
 * An initramfs with more files: a second (uncompressed newc) cpio archive appended to a first,
 * which the kernel unpacks in turn. It finds an uncompressed archive only at a 4-byte aligned
 * offset (zero bytes before it are skipped), so the first is padded with zeros to a multiple of
 * 4: a gzip'd archive whose length is not ("Initramfs unpacking failed: invalid magic at start
 * of compressed archive" and none of the appended files) is what the bundled one became when it
 * was rebuilt in session 17 (guest/build.sh now pads it, but an --initrd may be any file).
 */
export function appendCpio(first: Uint8Array, second: Uint8Array): Buffer {
  const pad = (4 - (first.length % 4)) % 4;
  return Buffer.concat([first, Buffer.alloc(pad), second]);
}
