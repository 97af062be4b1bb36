/**
 * What a VirtMachine's state is made of, as named sections of a saved-VM file: the harts
 * ("cpu" for hart 0 — all a one-hart VM has, as before SMP — then "cpu1".. and "smp": which hart
 * ran and which waited in WFI), the boot ROM, RAM, and one section per device holding the plain versioned object its
 * saveState() returns. Capturing is synchronous (the caller paused the machine and quiesced its
 * devices first); applying goes into a machine freshly built from the same config.
 *
 * A device on the board adds itself to `machineParts` and nothing else: its section is
 * "dev:" + the part's name, its version the state's `version` field.
 */
import type { VirtMachine } from '../machine.js';
import { decodeJson, encodeJson, StateFileError, type Section } from './file-format.js';
import { decodeRam, encodeRam, RAM_IMAGE_VERSION } from './ram-image.js';

/** One device's state: how to take it and how to put it back. */
export interface StatefulPart {
  name: string;
  save(): unknown;
  restore(state: unknown): void;
  /**
   * A device files saved before it existed do not have: restored without its section, it keeps
   * its reset state (the guest saved then was never told of it).
   */
  optional?: true;
}

interface HasState<S> {
  saveState(): S;
  restoreState(s: S): void;
}

const part = <S>(name: string, d: HasState<S>): StatefulPart => ({
  name,
  save: () => d.saveState(),
  restore: (s) => d.restoreState(s as S),
});

/**
 * The machine's devices in restore order: the PLIC first (devices re-drive their interrupt
 * lines into it as they restore), the NICs' cables before the NICs (a cable change raises a
 * link interrupt the NIC's own state then overrides), the PCIe host's config space before the
 * functions behind it. The names say where a device sits, so that a file from a VM with other
 * devices does not match.
 */
export function machineParts(vm: VirtMachine): StatefulPart[] {
  const b = vm.board;
  return [
    part('plic', b.plic),
    part('uart0', b.uart),
    part('test', b.test),
    part('rtc', b.rtc),
    // Added in session 13: files saved before then have no fw_cfg section.
    { ...part('fw-cfg', vm.fwCfg), optional: true },
    ...vm.nics.map((n): StatefulPart => ({
      name: `cable:${n.name}`,
      save: () => ({ version: 1, link: n.port.linkUp }),
      restore: (s) => {
        const st = s as { version?: number; link?: unknown };
        if (st?.version !== 1 || typeof st.link !== 'boolean') throw new Error('unsupported state');
        n.port.setLink(st.link);
      },
    })),
    part('pci', vm.pci),
    ...vm.virtio.map((t, slot) => part(`virtio-mmio${slot}:${t.device ? t.name : 'empty'}`, t)),
    ...vm.virtioPci.map((t) => part(`virtio-pci:${t.name}`, t)),
    ...vm.e1000s.map((d) => part(`e1000:${d.name}`, d)),
  ];
}

const versionOf = (s: unknown): number => {
  const v = (s as { version?: unknown } | undefined)?.version;
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : 1;
};

/**
 * The machine's sections: cpu, rom, ram, then "dev:NAME" for each device. Synchronous.
 * `withRam: false` leaves RAM out (a live migration sends it page by page).
 */
export function captureMachine(vm: VirtMachine, withRam = true): Section[] {
  const harts = vm.core.saveHarts();
  const sections: Section[] = [
    ...harts.harts.map((data, h) => ({ name: h === 0 ? 'cpu' : `cpu${h}`, version: 1, data })),
    ...(harts.harts.length > 1
      ? [
          {
            name: 'smp',
            version: 1,
            data: encodeJson({ version: 1, current: harts.current, waiting: harts.waiting }),
          },
        ]
      : []),
    { name: 'rom', version: 1, data: vm.core.rom.slice() },
    ...(withRam ? [{ name: 'ram', version: RAM_IMAGE_VERSION, data: encodeRam(vm.core.ram) }] : []),
  ];
  for (const p of machineParts(vm)) {
    const state = p.save();
    sections.push({ name: `dev:${p.name}`, version: versionOf(state), data: encodeJson(state) });
  }
  return sections;
}

/**
 * Puts saved sections into `vm` (built from the same config, not yet run). Throws
 * StateFileError naming `file` and the section at fault; the machine is then half restored and
 * must be closed, never run. `ram`: the guest's RAM as it came apart from the sections (a live
 * migration), instead of a "ram" section.
 */
export function applyMachine(
  vm: VirtMachine,
  sections: readonly Section[],
  file: string,
  ram?: Uint8Array,
  ramPresent?: Uint8Array,
): void {
  const byName = new Map(sections.map((s) => [s.name, s]));
  const need = (name: string): Section => {
    const s = byName.get(name);
    if (!s) throw new StateFileError(`${file}: no "${name}" section`);
    return s;
  };
  const parts = machineParts(vm);
  const want = new Set(parts.map((p) => `dev:${p.name}`));
  const have = sections.filter((s) => s.name.startsWith('dev:')).map((s) => s.name);
  const optional = new Set(parts.filter((p) => p.optional).map((p) => `dev:${p.name}`));
  const missing = [...want].filter((n) => !have.includes(n) && !optional.has(n));
  const extra = have.filter((n) => !want.has(n));
  if (missing.length || extra.length) {
    const list = (xs: string[]): string => xs.map((x) => x.slice(4)).join(', ');
    throw new StateFileError(
      `${file}: its devices do not match this VM's` +
        (missing.length ? `; not in the file: ${list(missing)}` : '') +
        (extra.length ? `; not in this VM: ${list(extra)}` : ''),
    );
  }
  if (ram) {
    if (ram.length !== vm.core.ram.length) {
      throw new StateFileError(
        `${file}: ${ram.length} bytes of RAM for a VM of ${vm.core.ram.length}`,
      );
    }
    const core = vm.core.ram;
    if (ram.buffer === core.buffer && ram.byteOffset === core.byteOffset) {
      // Received straight into this machine's RAM (a live migration's Core.unbound).
    } else if (ramPresent) {
      // Only the pages with data: the rest of a machine built to be restored is zeros already.
      for (let i = 0; i < ramPresent.length; i++) {
        const bits = ramPresent[i]!;
        if (bits === 0) continue;
        for (let k = 0; k < 8; k++) {
          if (!(bits & (1 << k))) continue;
          const at = (i * 8 + k) * 4096;
          vm.core.ram.set(ram.subarray(at, at + 4096), at);
        }
      }
    } else vm.core.ram.set(ram);
  } else {
    const section = need('ram');
    if (section.version !== RAM_IMAGE_VERSION) {
      throw new StateFileError(`${file}: RAM section version ${section.version} is not supported`);
    }
    const ramErr = decodeRam(section.data, vm.core.ram);
    if (ramErr) throw new StateFileError(`${file}: RAM: ${ramErr}`);
  }
  const rom = need('rom');
  if (rom.data.length !== vm.core.rom.length) {
    throw new StateFileError(
      `${file}: boot ROM of ${rom.data.length} bytes, expected ${vm.core.rom.length}`,
    );
  }
  vm.core.rom.set(rom.data);
  restoreHarts(vm, sections, need, file);
  for (const p of parts) {
    if (p.optional && !byName.has(`dev:${p.name}`)) continue;
    const s = need(`dev:${p.name}`);
    let state: unknown;
    try {
      state = decodeJson(s.data);
    } catch {
      throw new StateFileError(`${file}: device ${p.name}: not valid JSON`);
    }
    if (versionOf(state) !== s.version) {
      throw new StateFileError(
        `${file}: device ${p.name}: section version ${s.version} and state version ${versionOf(state)} differ`,
      );
    }
    try {
      p.restore(state);
    } catch (e) {
      throw new StateFileError(`${file}: device ${p.name}: ${(e as Error)?.message ?? String(e)}`);
    }
  }
}

/** The "cpu", "cpu1".. and "smp" sections into the machine's harts. */
function restoreHarts(
  vm: VirtMachine,
  sections: readonly Section[],
  need: (name: string) => Section,
  file: string,
): void {
  const cpus = [need('cpu')];
  for (let h = 1; ; h++) {
    const s = sections.find((x) => x.name === `cpu${h}`);
    if (!s) break;
    cpus.push(s);
  }
  const bad = cpus.find((c) => c.version !== 1);
  if (bad) throw new StateFileError(`${file}: CPU state: version ${bad.version}`);
  let current = 0;
  let waiting = 0;
  if (cpus.length > 1) {
    let smp: unknown;
    try {
      smp = decodeJson(need('smp').data);
    } catch (e) {
      if (e instanceof StateFileError) throw e;
      throw new StateFileError(`${file}: "smp" section: not valid JSON`);
    }
    const o = smp as { version?: unknown; current?: unknown; waiting?: unknown };
    if (o?.version !== 1 || typeof o.current !== 'number' || typeof o.waiting !== 'number') {
      throw new StateFileError(`${file}: "smp" section: not a state this build knows`);
    }
    current = o.current;
    waiting = o.waiting;
  }
  const err = vm.core.restoreHarts({ harts: cpus.map((c) => c.data), current, waiting });
  if (err) throw new StateFileError(`${file}: CPU state: ${err}`);
}
