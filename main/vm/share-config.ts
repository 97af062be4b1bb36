/**
 * Shared folders in a VM definition: a host directory the guest mounts over virtio-9p
 * (`--share PATH[,tag=NAME][,ro]`; in the guest `mount -t 9p -o trans=virtio NAME DIR`).
 * Parsing of the CLI form and validation of the JSON form live here; the device is
 * devices/virtio/9p.
 */
import { checkMountTag } from '../../devices/virtio/9p/device.js';

export interface ShareConfig {
  /** Host directory (absolute, or relative to where the VM starts). */
  path: string;
  /** Mount tag the guest names; 1..31 bytes, no space, comma or NUL. */
  tag: string;
  /** The guest may read but not change anything (EROFS). */
  readOnly?: boolean;
  /** 'pci': on the PCIe bus (virtio-pci, QEMU's virtio-9p-pci) instead of a virtio-mmio slot. */
  bus?: 'mmio' | 'pci';
}

/** Most shared folders per VM (each takes a virtio-mmio slot). */
export const MAX_SHARES = 4;

/** The tag a share gets when none is given: host0, host1, … by position. */
export const defaultShareTag = (i: number): string => `host${i}`;

/** A share that does not validate; config.ts makes it a ConfigError like any other field's. */
export class ShareError extends Error {}

/**
 * Parses `--share PATH[,tag=NAME][,ro][,bus=mmio|pci]` (`ro` may be written `readonly=on`; a
 * doubled comma in PATH is a comma, as QEMU's options take it). `index` gives the default tag.
 */
export function parseShareSpec(spec: string, index: number): ShareConfig {
  const parts = [''];
  for (let i = 0; i < spec.length; i++) {
    if (spec[i] !== ',') parts[parts.length - 1] += spec[i];
    else if (spec[i + 1] === ',') parts[parts.length - 1] += spec[i++];
    else parts.push('');
  }
  const [path, ...opts] = parts;
  const out: ShareConfig = { path: path!, tag: defaultShareTag(index) };
  for (const o of opts) {
    const eq = o.indexOf('=');
    const k = eq < 0 ? o : o.slice(0, eq);
    const v = eq < 0 ? undefined : o.slice(eq + 1);
    if (k === 'tag' && v !== undefined) out.tag = v;
    else if ((k === 'ro' && v === undefined) || (k === 'readonly' && v === 'on')) {
      out.readOnly = true;
    } else if (k === 'readonly' && v === 'off') delete out.readOnly;
    else if (k === 'bus' && (v === 'mmio' || v === 'pci')) {
      if (v === 'pci') out.bus = 'pci';
    } else {
      throw new ShareError(`--share ${spec}: unknown option "${o}" (tag=NAME, ro or bus=mmio|pci)`);
    }
  }
  return checkShare(out, `--share ${spec}`);
}

/** Validates one share from untrusted JSON (a definition file, an API request). */
export function checkShare(v: Partial<ShareConfig>, where: string): ShareConfig {
  if (typeof v.path !== 'string' || v.path === '') {
    throw new ShareError(`${where}: give the host folder's path`);
  }
  if (v.path.includes('\0')) throw new ShareError(`${where}: the path has a NUL`);
  if (typeof v.tag !== 'string') throw new ShareError(`${where}: "tag" must be a string`);
  const bad = checkMountTag(v.tag);
  if (bad) throw new ShareError(`${where}: ${bad}`);
  if (v.readOnly !== undefined && typeof v.readOnly !== 'boolean') {
    throw new ShareError(`${where}: "readOnly" must be true or false`);
  }
  if (v.bus !== undefined && v.bus !== 'mmio' && v.bus !== 'pci') {
    throw new ShareError(`${where}: "bus" must be "mmio" or "pci"`);
  }
  return {
    path: v.path,
    tag: v.tag,
    ...(v.readOnly ? { readOnly: true } : {}),
    ...(v.bus === 'pci' ? { bus: 'pci' as const } : {}),
  };
}

/** Checks a VM's list of shares: at most MAX_SHARES, tags distinct. */
export function checkShares(shares: readonly ShareConfig[], where: string): void {
  if (shares.length > MAX_SHARES) {
    throw new ShareError(`${where}: at most ${MAX_SHARES} shared folders`);
  }
  const tags = shares.map((s) => s.tag);
  const dup = tags.find((t, i) => tags.indexOf(t) !== i);
  if (dup !== undefined) throw new ShareError(`${where}: tag "${dup}" is given twice`);
}
