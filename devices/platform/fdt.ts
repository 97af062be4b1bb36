/**
 * A flattened devicetree (DTB) writer, format version 17 (last compatible 16), as specified in
 * the Devicetree Specification v0.4 chapter 5. Enough for a board to describe itself to firmware
 * and kernel: nodes, typed properties, phandles, a deduplicated strings block, and the memory
 * reservation map.
 *
 * Wiring errors (bad names, duplicate nodes) throw: they are bugs in our board code, never guest
 * input.
 */

const FDT_MAGIC = 0xd00dfeed;
const FDT_BEGIN_NODE = 1;
const FDT_END_NODE = 2;
const FDT_PROP = 3;
const FDT_END = 9;
const HEADER_SIZE = 40;

const NODE_NAME = /^[A-Za-z0-9,._+-]{1,31}(@[A-Za-z0-9,._+-]+)?$/;
const PROP_NAME = /^[A-Za-z0-9,._+?#-]{1,31}$/;

const encoder = new TextEncoder();

export interface FdtProperty {
  readonly name: string;
  /** The value as it appears in the blob (big-endian cells, NUL-terminated strings). */
  readonly value: Uint8Array;
}

export class FdtNode {
  private readonly propList: FdtProperty[] = [];
  private readonly childList: FdtNode[] = [];

  constructor(
    readonly name: string,
    private readonly tree: Fdt,
  ) {}

  get properties(): readonly FdtProperty[] {
    return this.propList;
  }

  get children(): readonly FdtNode[] {
    return this.childList;
  }

  /** Adds a child node; a second child of the same name is a bug. */
  addNode(name: string): FdtNode {
    if (!NODE_NAME.test(name)) throw new Error(`fdt: bad node name '${name}'`);
    if (this.child(name)) throw new Error(`fdt: duplicate node '${name}' under '${this.name}'`);
    const node = new FdtNode(name, this.tree);
    this.childList.push(node);
    return node;
  }

  child(name: string): FdtNode | undefined {
    return this.childList.find((c) => c.name === name);
  }

  property(name: string): FdtProperty | undefined {
    return this.propList.find((p) => p.name === name);
  }

  /** Sets a raw property value; setting an existing name replaces it in place. */
  setBytes(name: string, value: Uint8Array): this {
    if (!PROP_NAME.test(name)) throw new Error(`fdt: bad property name '${name}'`);
    const prop: FdtProperty = { name, value: Uint8Array.from(value) };
    const i = this.propList.findIndex((p) => p.name === name);
    if (i >= 0) this.propList[i] = prop;
    else this.propList.push(prop);
    return this;
  }

  /** A boolean property: present with no value ("interrupt-controller;"). */
  setEmpty(name: string): this {
    return this.setBytes(name, new Uint8Array(0));
  }

  setU32(name: string, value: number): this {
    return this.setCells(name, [value]);
  }

  /** A 64-bit value as two cells, high first. */
  setU64(name: string, value: number | bigint): this {
    return this.setCells(name, splitU64(value));
  }

  /** An array of 32-bit cells (reg, interrupts-extended, ranges, ...). */
  setCells(name: string, cells: readonly number[]): this {
    const value = new Uint8Array(cells.length * 4);
    const view = new DataView(value.buffer);
    cells.forEach((c, i) => {
      if (!Number.isInteger(c) || c < 0 || c > 0xffff_ffff) {
        throw new RangeError(`fdt: cell ${i} of '${name}' is not a u32: ${c}`);
      }
      view.setUint32(i * 4, c);
    });
    return this.setBytes(name, value);
  }

  setString(name: string, value: string): this {
    return this.setStrings(name, [value]);
  }

  /** A string list: each string NUL-terminated, concatenated ("compatible"). */
  setStrings(name: string, values: readonly string[]): this {
    const parts = values.map((s) => {
      if (s.includes('\0')) throw new Error(`fdt: NUL inside string of '${name}'`);
      return encoder.encode(s + '\0');
    });
    return this.setBytes(name, concat(parts));
  }

  /** Gives this node a phandle (once) and returns it, for references from other nodes. */
  phandle(): number {
    const existing = this.property('phandle');
    if (existing) return new DataView(existing.value.buffer).getUint32(0);
    const value = this.tree.nextPhandle();
    this.setU32('phandle', value);
    return value;
  }
}

export interface MemoryReservation {
  address: number | bigint;
  size: number | bigint;
}

export class Fdt {
  readonly root: FdtNode;
  readonly reservations: MemoryReservation[] = [];
  /** boot_cpuid_phys in the header: the hart that boots. */
  bootCpuId = 0;
  private lastPhandle = 0;

  constructor() {
    this.root = new FdtNode('', this);
  }

  /** Phandles are handed out 1, 2, 3, ... in the order nodes ask, like QEMU does. */
  nextPhandle(): number {
    return ++this.lastPhandle;
  }

  /** Adds an entry to the memory reservation map. */
  reserve(address: number | bigint, size: number | bigint): void {
    this.reservations.push({ address, size });
  }

  /** Serializes the tree: header, reservation map, structure block, strings block. */
  build(): Uint8Array {
    const strings = new StringsTable();
    const struct = new ByteWriter();
    const emit = (node: FdtNode): void => {
      struct.u32(FDT_BEGIN_NODE);
      struct.bytes(encoder.encode(node.name + '\0'));
      struct.align4();
      for (const p of node.properties) {
        struct.u32(FDT_PROP);
        struct.u32(p.value.length);
        struct.u32(strings.offsetOf(p.name));
        struct.bytes(p.value);
        struct.align4();
      }
      for (const c of node.children) emit(c);
      struct.u32(FDT_END_NODE);
    };
    emit(this.root);
    struct.u32(FDT_END);

    const rsv = new ByteWriter();
    for (const r of this.reservations) {
      rsv.u64(r.address);
      rsv.u64(r.size);
    }
    rsv.u64(0);
    rsv.u64(0);

    const structBytes = struct.result();
    const stringBytes = strings.result();
    const offRsv = HEADER_SIZE; // 8-aligned, as the spec requires
    const offStruct = offRsv + rsv.length;
    const offStrings = offStruct + structBytes.length;
    const total = offStrings + stringBytes.length;

    const out = new Uint8Array(total);
    const h = new DataView(out.buffer);
    h.setUint32(0, FDT_MAGIC);
    h.setUint32(4, total);
    h.setUint32(8, offStruct);
    h.setUint32(12, offStrings);
    h.setUint32(16, offRsv);
    h.setUint32(20, 17);
    h.setUint32(24, 16);
    h.setUint32(28, this.bootCpuId);
    h.setUint32(32, stringBytes.length);
    h.setUint32(36, structBytes.length);
    out.set(rsv.result(), offRsv);
    out.set(structBytes, offStruct);
    out.set(stringBytes, offStrings);
    return out;
  }
}

/** Property names, each stored once. */
class StringsTable {
  private readonly offsets = new Map<string, number>();
  private readonly writer = new ByteWriter();

  offsetOf(name: string): number {
    let off = this.offsets.get(name);
    if (off === undefined) {
      off = this.writer.length;
      this.writer.bytes(encoder.encode(name + '\0'));
      this.offsets.set(name, off);
    }
    return off;
  }

  result(): Uint8Array {
    return this.writer.result();
  }
}

class ByteWriter {
  private buf = new Uint8Array(4096);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  u32(v: number): void {
    this.room(4);
    new DataView(this.buf.buffer).setUint32(this.length, v);
    this.length += 4;
  }

  u64(v: number | bigint): void {
    const [hi, lo] = splitU64(v);
    this.u32(hi);
    this.u32(lo);
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  align4(): void {
    const pad = (4 - (this.length & 3)) & 3;
    this.room(pad);
    this.buf.fill(0, this.length, this.length + pad);
    this.length += pad;
  }

  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/** [high, low] cells of a 64-bit value. */
export function splitU64(value: number | bigint): [number, number] {
  const v = BigInt(value);
  if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new RangeError(`fdt: not a u64: ${value}`);
  return [Number(v >> 32n), Number(v & 0xffff_ffffn)];
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
