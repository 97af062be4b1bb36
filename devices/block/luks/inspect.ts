/**
 * What `img info` shows of a LUKS header (no key needed: the header is not encrypted), in
 * qemu-img's shape — its "encrypt:" section and its JSON key names.
 */
import { LUKS_SECTOR, type LuksHeader } from './header.js';

export interface LuksInfo {
  cipherAlg: string;
  cipherMode: string;
  ivgenAlg: string;
  hashAlg: string;
  uuid: string;
  slots: { active: boolean; iters?: number; keyOffset: number; stripes?: number }[];
  payloadOffset: number;
  masterKeyIters: number;
}

export function luksInfo(h: LuksHeader): LuksInfo {
  const [mode, ivgen] = h.cipherMode.split('-');
  return {
    cipherAlg: `${h.cipherName}-${(h.keyBytes / 2) * 8}`, // XTS: two keys
    cipherMode: mode ?? h.cipherMode,
    ivgenAlg: ivgen ?? '',
    hashAlg: h.hash,
    uuid: h.uuid,
    slots: h.slots.map((s) =>
      s.active
        ? {
            active: true,
            iters: s.iterations,
            keyOffset: s.keyOffset * LUKS_SECTOR,
            stripes: s.stripes,
          }
        : { active: false, keyOffset: s.keyOffset * LUKS_SECTOR },
    ),
    payloadOffset: h.payloadOffset * LUKS_SECTOR,
    masterKeyIters: h.mkDigestIterations,
  };
}

/** qemu-img info --output json's keys. */
export function luksInfoJson(i: LuksInfo): Record<string, unknown> {
  return {
    'ivgen-alg': i.ivgenAlg,
    'hash-alg': i.hashAlg,
    'cipher-alg': i.cipherAlg,
    uuid: i.uuid,
    'cipher-mode': i.cipherMode,
    slots: i.slots.map((s) =>
      s.active
        ? { active: true, iters: s.iters, 'key-offset': s.keyOffset, stripes: s.stripes }
        : { active: false, 'key-offset': s.keyOffset },
    ),
    'payload-offset': i.payloadOffset,
    'master-key-iters': i.masterKeyIters,
  };
}

/** qemu-img info's human lines, indented by `pad`. */
export function luksInfoText(i: LuksInfo, pad: string): string[] {
  const out = [
    `${pad}ivgen alg: ${i.ivgenAlg}`,
    `${pad}hash alg: ${i.hashAlg}`,
    `${pad}cipher alg: ${i.cipherAlg}`,
    `${pad}uuid: ${i.uuid}`,
    `${pad}cipher mode: ${i.cipherMode}`,
    `${pad}slots:`,
  ];
  i.slots.forEach((s, n) => {
    out.push(`${pad}    [${n}]:`, `${pad}        active: ${s.active}`);
    if (s.active) out.push(`${pad}        iters: ${s.iters}`);
    out.push(`${pad}        key offset: ${s.keyOffset}`);
    if (s.active) out.push(`${pad}        stripes: ${s.stripes}`);
  });
  out.push(
    `${pad}payload offset: ${i.payloadOffset}`,
    `${pad}master key iters: ${i.masterKeyIters}`,
  );
  return out;
}
