/** Create / edit a VM definition. The host validates again; its error is shown in the dialog. */
import type { VmConfig } from '../../main/host/api-types.js';
import type { DiskConfig, FwCfgConfig, NicConfig, ShareConfig } from '../../main/vm/config.js';
import { ask } from './ask-dialog.js';
import { h } from './dom.js';

/** Where Debian's u-boot-qemu package puts U-Boot for QEMU's riscv64 virt in S-mode. */
const UBOOT_PATH = '/usr/lib/u-boot/qemu-riscv64_smode/uboot.elf';

function field(label: string, input: HTMLElement, hint?: string): HTMLElement {
  return h(
    'label',
    { class: 'field' },
    h('span', {}, label),
    input,
    hint ? h('small', {}, hint) : undefined,
  );
}

const FORMATS = ['raw', 'qcow2', 'luks'];
const CACHE_MODES = ['writeback', 'writethrough', 'unsafe'];
const SCHEDULERS = ['noop', 'sstf', 'scan', 'deadline', 'lifo', 'random', 'cfq'];

function select(name: string, options: string[], value: string): HTMLSelectElement {
  const s = h('select', { name }, ...options.map((o) => h('option', { value: o }, o)));
  s.value = value;
  return s;
}

function flag(name: string, label: string, title: string, on: boolean): HTMLElement {
  return h(
    'label',
    { class: 'disk-ro', title },
    h('input', { name, type: 'checkbox', checked: on }),
    label,
  );
}

/** A list row's control by name (every row builds its controls, so it is there). */
function control(row: HTMLElement, name: string): HTMLInputElement & HTMLSelectElement {
  return row.querySelector<HTMLInputElement & HTMLSelectElement>(`[name=${name}]`)!;
}

/** Appends to a list row the × button that takes it out of its list (then calls `removed`). */
function withRemove(row: HTMLElement, label: string, removed?: () => void): HTMLElement {
  const remove = h('button', { type: 'button', class: 'btn btn-icon', 'aria-label': label }, '×');
  remove.addEventListener('click', () => {
    row.remove();
    removed?.();
  });
  row.append(remove);
  return row;
}

const PACKED_TITLE =
  'packed=on: offer packed virtqueues (VIRTIO_F_RING_PACKED) rather than split ones only';

/**
 * The packed-rings box of a virtio disk or NIC row, showing whether the device offers them: its
 * own choice, else the VM's.
 */
function packedFlag(own: boolean | undefined, vmPacked: boolean): HTMLElement {
  return flag('packed', 'packed', PACKED_TITLE, own ?? vmPacked);
}

/** A row's packed choice as the definition keeps it: only where it differs from the VM's. */
function packedChoice(row: HTMLElement, vmPacked: boolean): { packed?: boolean } {
  const box = control(row, 'packed');
  return box.disabled || box.checked === vmPacked ? {} : { packed: box.checked };
}

/**
 * One virtio-blk disk: image path and format, the key file of an encrypted image (none: the
 * passphrase is asked at start), cache mode, scheduler, read-only, snapshot=on, cor=on,
 * bus=pci and packed rings (the first disk is /dev/vda).
 */
function diskRow(
  d: Partial<DiskConfig> = {},
  vmPacked = false,
  newImage?: (row: HTMLElement) => void,
): HTMLElement {
  const row = h(
    'div',
    { class: 'disk-row' },
    h('input', {
      name: 'path',
      value: d.path ?? '',
      placeholder: '/path/to/disk.img',
      spellcheck: 'false',
    }),
    select('format', FORMATS, d.format ?? 'raw'),
    h('input', {
      name: 'keyFile',
      class: 'disk-key',
      value: d.keyFile ?? '',
      placeholder: 'key file',
      title: 'encrypted images: a file holding the passphrase (empty: asked at start)',
      spellcheck: 'false',
    }),
    select('cache', CACHE_MODES, d.cache ?? 'writeback'),
    select('sched', SCHEDULERS, d.sched ?? 'noop'),
    flag('ro', 'ro', 'read-only', d.readOnly ?? false),
    flag('snapshot', 'snap', 'snapshot=on: writes go to a temporary overlay', d.snapshot ?? false),
    flag('cor', 'cor', 'cor=on: copy what is read from the backing chain', d.cor ?? false),
    flag(
      'pci',
      'pci',
      'bus=pci: on the PCIe bus (virtio-pci) instead of virtio-mmio',
      d.bus === 'pci',
    ),
    packedFlag(d.packed, vmPacked),
  );
  if (newImage) {
    row.append(
      h(
        'button',
        {
          type: 'button',
          class: 'btn disk-new',
          title: 'create a new blank image here (or, with no path, in the data folder)',
          onclick: () => newImage(row),
        },
        'New image…',
      ),
    );
  }
  return withRemove(row, 'remove disk');
}

function readDisks(list: HTMLElement, vmPacked: boolean): Partial<DiskConfig>[] {
  return Array.from(list.querySelectorAll<HTMLElement>('.disk-row'))
    .map((r) => {
      const v = (n: string) => control(r, n);
      return {
        path: v('path').value.trim(),
        format: v('format').value as DiskConfig['format'],
        ...(v('keyFile').value.trim() ? { keyFile: v('keyFile').value.trim() } : {}),
        cache: v('cache').value as DiskConfig['cache'],
        sched: v('sched').value as DiskConfig['sched'],
        readOnly: v('ro').checked,
        ...(v('snapshot').checked ? { snapshot: true } : {}),
        ...(v('cor').checked ? { cor: true } : {}),
        ...(v('pci').checked ? { bus: 'pci' as const } : {}),
        ...packedChoice(r, vmPacked),
      };
    })
    .filter((d) => d.path);
}

const NIC_MODELS: [NicConfig['model'], string][] = [
  ['e1000', 'e1000 — emulated Intel 82540EM (PCIe)'],
  ['virtio', 'virtio-net (virtio-mmio)'],
  ['virtio-pci', 'virtio-net (PCIe)'],
];
/** What each kind of network takes in the text box beside it. */
const NET_DETAILS: Record<string, { placeholder: string; title: string }> = {
  user: {
    placeholder: 'hostfwd=tcp::8080-:80,restrict=on',
    title:
      'NAT to the host and beyond (DHCP 10.0.2.15, host at 10.0.2.2); optional: ' +
      'hostfwd=tcp|udp::HOSTPORT-:GUESTPORT (repeatable, comma-separated), restrict=on, ' +
      'tftp=DIR (a read-only TFTP server at 10.0.2.2), bootfile=FILE (named by DHCP)',
  },
  switch: { placeholder: 'switch name', title: 'an L2 switch shared by every NIC on this name' },
  none: { placeholder: '', title: 'no cable: the guest sees no carrier' },
};

/**
 * One network card: model, the network its cable goes to (NAT, a named switch or none, in the
 * CLI's --nic net= syntax once joined), MAC (empty: random per boot) and a capture file.
 */
function nicRow(n: Partial<NicConfig> = {}, vmPacked = false): HTMLElement {
  const net = n.net ?? 'user';
  const kind = net.startsWith('switch:') ? 'switch' : net === 'none' ? 'none' : 'user';
  const detail =
    kind === 'switch' ? net.slice('switch:'.length) : kind === 'user' ? net.slice(5) : '';
  const model = h(
    'select',
    { name: 'model' },
    ...NIC_MODELS.map(([m, label]) => h('option', { value: m }, label)),
  );
  model.value = n.model ?? 'virtio';
  const netKind = select('net', ['user', 'switch', 'none'], kind);
  const details = h('input', { name: 'netDetail', value: detail, spellcheck: 'false' });
  const fit = () => {
    const d = NET_DETAILS[netKind.value]!;
    details.placeholder = d.placeholder;
    details.title = d.title;
    details.disabled = netKind.value === 'none';
    details.required = netKind.value === 'switch';
  };
  netKind.addEventListener('change', fit);
  fit();
  // Packed rings are a virtio matter: the box stays for an e1000, disabled.
  const packed = packedFlag(n.packed, vmPacked);
  const fitModel = () => {
    control(packed, 'packed').disabled = model.value === 'e1000';
  };
  model.addEventListener('change', fitModel);
  fitModel();
  const row = h(
    'div',
    { class: 'disk-row nic-row' },
    model,
    netKind,
    details,
    h('input', {
      name: 'mac',
      class: 'nic-mac',
      value: n.mac ?? '',
      placeholder: 'MAC (random)',
      title: 'e.g. 52:54:00:12:34:56; empty: a random locally administered address per boot',
      spellcheck: 'false',
    }),
    h('input', {
      name: 'capture',
      class: 'disk-key',
      value: n.capture ?? '',
      placeholder: 'capture.pcap',
      title: 'tee the card’s frames to this pcap file from boot on (empty: none)',
      spellcheck: 'false',
    }),
    packed,
  );
  return withRemove(row, 'remove network card');
}

function readNics(list: HTMLElement, vmPacked: boolean): Partial<NicConfig>[] {
  return Array.from(list.querySelectorAll<HTMLElement>('.nic-row')).map((r) => {
    const v = (n: string) => control(r, n);
    const detail = v('netDetail').value.trim();
    const kind = v('net').value;
    const net =
      kind === 'none'
        ? 'none'
        : kind === 'switch'
          ? `switch:${detail}`
          : detail
            ? `user,${detail}`
            : 'user';
    return {
      model: v('model').value as NicConfig['model'],
      net,
      ...(v('mac').value.trim() ? { mac: v('mac').value.trim() } : {}),
      ...(v('capture').value.trim() ? { capture: v('capture').value.trim() } : {}),
      ...packedChoice(r, vmPacked),
    };
  });
}

/**
 * One file for the guest through fw_cfg: its name under opt/ and either a host file (read when
 * the VM starts) or text kept in the definition.
 */
function fwCfgRow(f: Partial<FwCfgConfig> = {}): HTMLElement {
  const kind = select('kind', ['file', 'string'], f.string !== undefined ? 'string' : 'file');
  const value = h('input', {
    name: 'value',
    value: f.string ?? f.file ?? '',
    spellcheck: 'false',
  });
  const fit = () => {
    value.placeholder = kind.value === 'file' ? '/path/on/the/host' : 'text';
  };
  kind.addEventListener('change', fit);
  fit();
  const row = h(
    'div',
    { class: 'disk-row fwcfg-row' },
    h('input', {
      name: 'fwName',
      value: f.name ?? 'opt/',
      placeholder: 'opt/org.example/config',
      title: 'the guest reads it at /sys/firmware/qemu_fw_cfg/by_name/NAME/raw',
      spellcheck: 'false',
    }),
    kind,
    value,
  );
  return withRemove(row, 'remove fw_cfg file');
}

function readFwCfg(list: HTMLElement): Partial<FwCfgConfig>[] {
  return Array.from(list.querySelectorAll<HTMLElement>('.fwcfg-row')).map((r) => {
    const v = (n: string) => control(r, n);
    const val = v('value').value;
    return {
      name: v('fwName').value.trim(),
      ...(v('kind').value === 'file' ? { file: val.trim() } : { string: val }),
    };
  });
}

// Shared folders (virtio-9p). The rules are main/vm/share-config.ts's and checkMountTag's
// (devices/virtio/9p/device.ts), restated: those modules reach Node's fs, which the renderer
// cannot import. The host checks again when it saves.

/** Most shared folders per VM (MAX_SHARES: each takes a virtio-mmio slot). */
const MAX_SHARES = 4;
/** Longest mount tag, in UTF-8 bytes. */
const MAX_TAG_BYTES = 31;

/** What is wrong with a mount tag, in checkMountTag's words; undefined if nothing. */
function tagProblem(tag: string): string | undefined {
  const bytes = new TextEncoder().encode(tag).length;
  if (bytes === 0) return 'the tag is empty';
  if (bytes > MAX_TAG_BYTES) return `the tag is longer than ${MAX_TAG_BYTES} bytes`;
  if (/[\0\s,]/.test(tag)) return 'the tag has a space, a comma or a NUL';
  return undefined;
}

/**
 * One shared folder: the host folder, the mount tag the guest names (1–31 bytes, no space or
 * comma), read-only, and on PCIe rather than virtio-mmio.
 */
function shareRow(s: Partial<ShareConfig>, removed: () => void): HTMLElement {
  const row = h(
    'div',
    { class: 'disk-row share-row' },
    h('input', {
      name: 'path',
      value: s.path ?? '',
      placeholder: '/path/to/a/host/folder',
      title: 'a folder on the host (absolute, or relative to where the VM starts)',
      spellcheck: 'false',
    }),
    h('input', {
      name: 'tag',
      class: 'share-tag',
      value: s.tag ?? '',
      placeholder: 'tag',
      title: 'the mount tag the guest names: 1–31 bytes, no space or comma',
      spellcheck: 'false',
    }),
    flag(
      'readOnly',
      'read-only',
      'the guest may read but not change anything',
      s.readOnly ?? false,
    ),
    flag(
      'pci',
      'pci',
      'bus=pci: on the PCIe bus (virtio-pci) instead of virtio-mmio',
      s.bus === 'pci',
    ),
  );
  return withRemove(row, 'remove shared folder', removed);
}

function readShares(list: HTMLElement): ShareConfig[] {
  return Array.from(list.querySelectorAll<HTMLElement>('.share-row')).map((r) => {
    const v = (n: string) => control(r, n);
    return {
      path: v('path').value.trim(),
      tag: v('tag').value.trim(),
      ...(v('readOnly').checked ? { readOnly: true } : {}),
      ...(v('pci').checked ? { bus: 'pci' as const } : {}),
    };
  });
}

/**
 * Marks the shared folders' faults as the host would find them (an empty path, a bad tag, a tag
 * given twice) on their controls, so the form will not submit and the browser names the fault.
 */
function markShares(list: HTMLElement): void {
  const seen = new Set<string>();
  for (const r of Array.from(list.querySelectorAll<HTMLElement>('.share-row'))) {
    const path = control(r, 'path');
    const tag = control(r, 'tag');
    const t = tag.value.trim();
    path.setCustomValidity(path.value.trim() ? '' : 'give the host folder’s path');
    tag.setCustomValidity(tagProblem(t) ?? (seen.has(t) ? `tag "${t}" is given twice` : ''));
    seen.add(t);
  }
}

/** The host API's createDiskImage, as the dialog calls it. */
export type CreateImage = (p: {
  path?: string;
  vm?: string;
  format: 'raw' | 'qcow2';
  size: number;
}) => Promise<{ path: string; message: string }>;

/** "8G", "512M", "1T", "1048576" → bytes (binary units, as qemu-img reads them); NaN if not. */
export function parseImageSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text);
  if (!m) return NaN;
  const unit = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }[m[2]!.toUpperCase()]!;
  return Math.round(Number(m[1]) * unit);
}

/**
 * Asks for the size of a new blank image for a disk row and creates it where the row's path
 * says (or in the data folder when empty), then fills the row with it.
 */
async function newImageFor(row: HTMLElement, vm: string, create: CreateImage): Promise<void> {
  const v = (n: string) => control(row, n);
  const note = row.querySelector<HTMLElement>('.disk-note') ?? h('small', { class: 'disk-note' });
  row.append(note);
  const format = v('format').value;
  if (format !== 'raw' && format !== 'qcow2') {
    note.textContent = 'encrypted images: wasmvisor img create -f luks FILE SIZE';
    return;
  }
  const size = h('input', { name: 'size', value: '8G', required: true, spellcheck: 'false' });
  const where = v('path').value.trim();
  const bytes = await ask({
    className: 'new-image-dialog',
    title: `New ${format} image`,
    body: [
      h('p', { class: 'dialog-note' }, where ? `At ${where}` : 'In the data folder’s images/'),
      h('label', { class: 'field' }, h('span', {}, 'Size'), size, h('small', {}, 'e.g. 512M, 8G')),
    ],
    submit: { label: 'Create', value: 'create' },
    read: () => {
      const n = parseImageSize(size.value);
      size.setCustomValidity(Number.isFinite(n) && n > 0 ? '' : 'a size such as 512M or 8G');
      return size.reportValidity() ? n : undefined;
    },
    focus: size,
  });
  if (bytes === undefined) return;
  try {
    const r = await create({ ...(where ? { path: where } : { vm }), format, size: bytes });
    v('path').value = r.path;
    note.textContent = r.message;
  } catch (e) {
    note.textContent = (e as Error).message;
  }
}

/** Resolves with the new definition after `save` accepted it, or undefined on cancel. */
export function editVmDialog(
  initial: VmConfig | undefined,
  save: (cfg: Record<string, unknown>) => Promise<void>,
  createImage?: CreateImage,
): Promise<void> {
  const v = initial;
  const name = h('input', {
    name: 'name',
    required: true,
    pattern: '[\\w.\\-]{1,64}',
    value: v?.name ?? '',
  });
  const mem = h('input', {
    name: 'memMiB',
    type: 'number',
    min: 16,
    max: 2048,
    step: 16,
    value: v?.memMiB ?? 256,
  });
  const cpus = h('input', {
    name: 'cpus',
    type: 'number',
    min: 1,
    max: 8,
    step: 1,
    value: v?.cpus ?? 1,
  });
  const path = (n: string, val?: string) =>
    h('input', { name: n, value: val ?? '', placeholder: 'bundled guest', spellcheck: 'false' });
  const kernel = path('kernel', v?.kernel);
  // Offered as the kernel: Debian's U-Boot (u-boot-qemu), which boots what the first disk holds.
  kernel.setAttribute('list', 'kernel-choices');
  const kernelChoices = h(
    'datalist',
    { id: 'kernel-choices' },
    h('option', { value: UBOOT_PATH }, 'U-Boot (Debian’s u-boot-qemu): boot from the disk'),
  );
  const initrd = path('initrd', v?.initrd);
  const firmware = path('firmware', v?.firmware);
  const append = h('input', {
    name: 'cmdline' /* not 'append': a form's named controls shadow its methods */,
    value: v?.append ?? '',
    placeholder: 'console=ttyS0',
    spellcheck: 'false',
  });
  const con = h(
    'select',
    { name: 'console' },
    h('option', { value: 'ttyS0' }, 'ttyS0 — 16550A UART'),
    h('option', { value: 'hvc0' }, 'hvc0 — virtio-console'),
  );
  con.value = v?.console ?? 'ttyS0';
  const rng = h('input', { name: 'rng', type: 'checkbox', checked: v?.rng ?? false });
  const virtioPacked = h('input', {
    name: 'virtioPacked',
    type: 'checkbox',
    checked: v?.virtioPacked ?? false,
  });
  const jit = h('input', { name: 'jit', type: 'checkbox', checked: v?.jit ?? true });
  const clock = h(
    'select',
    { name: 'clock' },
    h('option', { value: 'host' }, 'host time'),
    h('option', { value: 'icount' }, 'instructions (deterministic), idle waits'),
    h('option', { value: 'icount-nosleep' }, 'instructions (deterministic), idle jumps ahead'),
  );
  clock.value = !v?.icount ? 'host' : v.icount.sleep ? 'icount' : 'icount-nosleep';
  const rtcBase = h('input', {
    name: 'rtcBase',
    value: v?.rtcBase?.replace(/Z$/, '') ?? '',
    placeholder: 'now',
    spellcheck: 'false',
  });
  const newImage = createImage
    ? (row: HTMLElement) => void newImageFor(row, name.value.trim() || 'vm', createImage)
    : undefined;
  const vmPacked = v?.virtioPacked ?? false;
  const disks = h(
    'div',
    { class: 'disk-list' },
    ...(v?.disks ?? []).map((d) => diskRow(d, vmPacked, newImage)),
  );
  const addDisk = h(
    'button',
    {
      type: 'button',
      class: 'btn',
      onclick: () => disks.append(diskRow({}, virtioPacked.checked, newImage)),
    },
    '+ Add disk',
  );
  const nics = h('div', { class: 'disk-list' }, ...(v?.nics ?? []).map((n) => nicRow(n, vmPacked)));
  const addNic = h(
    'button',
    { type: 'button', class: 'btn', onclick: () => nics.append(nicRow({}, virtioPacked.checked)) },
    '+ Add network card',
  );
  // "Every virtio device": the disks' and NICs' boxes follow; each may then be set apart.
  virtioPacked.addEventListener('change', () => {
    for (const box of [disks, nics].flatMap((l) =>
      Array.from(l.querySelectorAll<HTMLInputElement>('[name=packed]')),
    )) {
      if (!box.disabled) box.checked = virtioPacked.checked;
    }
  });
  const fwCfg = h('div', { class: 'disk-list' }, ...(v?.fwCfg ?? []).map((f) => fwCfgRow(f)));
  const addFwCfg = h(
    'button',
    { type: 'button', class: 'btn', onclick: () => fwCfg.append(fwCfgRow()) },
    '+ Add file',
  );
  const error = h('p', { class: 'dialog-error', role: 'alert' });
  // Shared folders: "+ Add" stops at MAX_SHARES; a new row's tag is hostN by its place, as
  // --share names them (the next free one, if that is taken); the hint names the first tag.
  const shares = h('div', { class: 'disk-list' });
  const addShare = h('button', { type: 'button', class: 'btn' }, '+ Add shared folder');
  const mountHint = h('small', { class: 'share-hint' });
  /** The first shared folder's fault markShares found, naming its row. */
  const shareFault = (): string | undefined => {
    const bad = shares.querySelector<HTMLInputElement>('input:invalid');
    const row = bad?.closest('.share-row');
    if (!bad || !row) return undefined;
    return `Shared folder ${Array.from(shares.children).indexOf(row) + 1}: ${bad.validationMessage}`;
  };
  const fitShares = () => {
    markShares(shares);
    addShare.disabled = shares.querySelectorAll('.share-row').length >= MAX_SHARES;
    addShare.title = addShare.disabled ? `at most ${MAX_SHARES} shared folders` : '';
    const tag = readShares(shares)[0]?.tag || 'TAG';
    mountHint.textContent = `in the guest: mount -t 9p -o trans=virtio ${tag} /mnt`;
    // A fault shown in the error line follows the edits (and goes once mended).
    if (error.dataset.from === 'shares') error.textContent = shareFault() ?? '';
  };
  shares.append(...(v?.shares ?? []).map((s) => shareRow(s, fitShares)));
  addShare.addEventListener('click', () => {
    const taken = new Set(readShares(shares).map((s) => s.tag));
    let n = shares.querySelectorAll('.share-row').length;
    while (taken.has(`host${n}`)) n++;
    const row = shareRow({ tag: `host${n}` }, fitShares);
    shares.append(row);
    fitShares();
    control(row, 'path').focus();
  });
  shares.addEventListener('input', fitShares);
  fitShares();
  const balloon = h('input', {
    name: 'balloon',
    type: 'checkbox',
    checked: v?.balloon?.enabled ?? false,
  });
  // The balloon's settings (--balloon's options); unset ones take the host's defaults.
  const reporting = h('input', {
    name: 'freePageReporting',
    type: 'checkbox',
    checked: v?.balloon?.freePageReporting ?? true,
  });
  const deflateOnOom = h('input', {
    name: 'deflateOnOom',
    type: 'checkbox',
    checked: v?.balloon?.deflateOnOom ?? false,
  });
  const statsPeriod = h('input', {
    name: 'statsPeriodS',
    type: 'number',
    min: 0,
    max: 3600,
    step: 1,
    value: v?.balloon?.statsPeriodS ?? 2,
  });
  const balloonOptions = h(
    'div',
    { class: 'balloon-options' },
    h('label', { class: 'disk-ro' }, reporting, 'free page reporting'),
    h('label', { class: 'disk-ro' }, deflateOnOom, 'deflate on OOM'),
    h('label', { class: 'disk-ro' }, 'guest stats every', statsPeriod, 's (0: none)'),
  );
  const showBalloonOptions = () => (balloonOptions.hidden = !balloon.checked);
  balloon.addEventListener('change', showBalloonOptions);
  showBalloonOptions();
  const form = h(
    'form',
    { method: 'dialog' },
    h('h2', {}, v ? `Edit ${v.name}` : 'New VM'),
    field('Name', name),
    field('Memory (MiB)', mem, '16 – 2048'),
    field(
      'CPUs',
      cpus,
      '1 – 8 (--smp); they take turns on the VM’s one thread: more CPUs for the guest, not more host cores',
    ),
    field(
      'Kernel',
      kernel,
      'Linux Image, raw or gzip’d; or U-Boot, to boot the kernel the first disk holds; empty = bundled',
    ),
    kernelChoices,
    field('Initrd', initrd),
    field('Firmware', firmware, 'OpenSBI fw_dynamic.bin or fw_jump.bin'),
    field('Kernel command line', append),
    field('Console', con, 'hvc0 adds a virtio-console; firmware output still shows on ttyS0'),
    h(
      'div',
      { class: 'field' },
      h('span', {}, 'Disks (virtio-blk; the first is /dev/vda)'),
      disks,
      h('div', {}, addDisk),
    ),
    h(
      'div',
      { class: 'field' },
      h('span', {}, 'Network cards (their back ends also switch live, from Devices)'),
      nics,
      h('div', {}, addNic),
    ),
    h(
      'label',
      { class: 'field field-check' },
      rng,
      h('span', {}, 'virtio-rng (entropy from the host)'),
    ),
    h(
      'label',
      {
        class: 'field field-check',
        title:
          'QEMU’s packed=on: the guest’s drivers may lay their queues out as packed rings ' +
          '(one descriptor ring) instead of split ones; a disk’s or card’s own box can differ',
      },
      virtioPacked,
      h('span', {}, 'Packed virtqueues on every virtio device (VIRTIO_F_RING_PACKED)'),
    ),
    h(
      'label',
      {
        class: 'field field-check',
        title:
          'the guest can give memory back to the host (free page reporting) and be asked to ' +
          'shrink from the Devices panel',
      },
      balloon,
      h('span', {}, 'virtio-balloon (memory returned to the host)'),
    ),
    balloonOptions,
    h(
      'label',
      {
        class: 'field field-check',
        title:
          'translate hot guest code to WebAssembly: CPU-bound code runs several times faster; ' +
          'unchecked, every instruction is interpreted',
      },
      jit,
      h('span', {}, 'JIT: translate hot guest code to WebAssembly'),
    ),
    h(
      'div',
      { class: 'field' },
      h('span', {}, 'Files for the guest (fw_cfg, as QEMU’s -fw_cfg)'),
      fwCfg,
      h('div', {}, addFwCfg),
    ),
    h(
      'div',
      { class: 'field' },
      h('span', {}, 'Shared folders (virtio-9p: host folders the guest mounts)'),
      shares,
      h('div', {}, addShare),
      mountHint,
    ),
    field(
      'Guest time',
      clock,
      'deterministic: the clock counts instructions (--icount), so runs repeat exactly',
    ),
    field('RTC start (UTC)', rtcBase, 'YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS; empty = now'),
    error,
    h(
      'div',
      { class: 'dialog-buttons' },
      h(
        'button',
        { type: 'button', class: 'btn', value: 'cancel', 'data-action': 'cancel' },
        'Cancel',
      ),
      h(
        'button',
        { type: 'submit', class: 'btn btn-primary', value: 'save' },
        v ? 'Save' : 'Create',
      ),
    ),
  );
  const dlg = h('dialog', { class: 'vm-dialog' }, form);
  document.body.append(dlg);
  return new Promise((resolve) => {
    const close = () => {
      dlg.close();
      dlg.remove();
      resolve();
    };
    // A shared folder's fault (markShares) stops the submit; the browser points at the control
    // and the dialog's error line says which row and what.
    form.addEventListener(
      'invalid',
      (e) => {
        if (!shares.contains(e.target as Node)) return;
        error.textContent = shareFault() ?? '';
        error.dataset.from = 'shares';
      },
      true,
    );
    form.querySelector('[data-action=cancel]')!.addEventListener('click', close);
    dlg.addEventListener('cancel', close);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const opt = (i: HTMLInputElement) => (i.value.trim() ? i.value.trim() : undefined);
      const cfg: Record<string, unknown> = {
        ...(v ?? {}),
        name: name.value.trim(),
        memMiB: Number(mem.value),
        cpus: Number(cpus.value),
        kernel: opt(kernel),
        initrd: opt(initrd),
        firmware: opt(firmware),
        append: opt(append),
        console: con.value,
        rng: rng.checked,
        // Checked is the default (absent from the definition); unchecked is kept as false.
        jit: jit.checked ? undefined : false,
        icount:
          clock.value === 'host'
            ? undefined
            : { shift: v?.icount?.shift ?? 4, sleep: clock.value === 'icount' },
        rtcBase: opt(rtcBase),
        disks: readDisks(disks, virtioPacked.checked),
        nics: readNics(nics, virtioPacked.checked),
        virtioPacked: virtioPacked.checked ? true : undefined,
        fwCfg: readFwCfg(fwCfg).length ? readFwCfg(fwCfg) : undefined,
        shares: readShares(shares).length ? readShares(shares) : undefined,
        balloon: balloon.checked
          ? {
              enabled: true,
              freePageReporting: reporting.checked,
              deflateOnOom: deflateOnOom.checked,
              statsPeriodS: Number(statsPeriod.value),
            }
          : undefined,
      };
      save(cfg).then(close, (err: Error) => {
        error.textContent = err.message;
        delete error.dataset.from;
      });
    });
    dlg.showModal();
    name.focus();
  });
}
