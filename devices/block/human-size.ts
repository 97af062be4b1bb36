/** qemu-img's human sizes: "64 MiB", "196 KiB", "1.5 GiB" (img info, img snapshot, new images). */
export function human(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${n} B`;
  return `${Number(v.toPrecision(3))} ${units[i]}`;
}
