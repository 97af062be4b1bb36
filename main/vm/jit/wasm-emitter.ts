/**
 * A minimal WebAssembly binary writer for the JIT: a byte buffer with LEB128 immediates and
 * the few opcodes translated blocks use, and a module wrapper (types, imports of the core's
 * memory and slow paths, functions, exports). No validation beyond what the engine does.
 */

/** Opcodes used by the translator (numbering from the WebAssembly core specification). */
export const Op = {
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  br_if: 0x0d,
  br_table: 0x0e,
  return: 0x0f,
  call: 0x10,
  call_indirect: 0x11,
  return_call: 0x12,
  return_call_indirect: 0x13,
  drop: 0x1a,
  select: 0x1b,
  local_get: 0x20,
  local_set: 0x21,
  local_tee: 0x22,
  i32_load: 0x28,
  i64_load: 0x29,
  i64_load8_s: 0x30,
  i64_load8_u: 0x31,
  i64_load16_s: 0x32,
  i64_load16_u: 0x33,
  i64_load32_s: 0x34,
  i64_load32_u: 0x35,
  i32_store: 0x36,
  i64_store: 0x37,
  i64_store8: 0x3c,
  i64_store16: 0x3d,
  i64_store32: 0x3e,
  i32_const: 0x41,
  i64_const: 0x42,
  i32_eqz: 0x45,
  i32_lt_s: 0x48,
  i32_lt_u: 0x49,
  i32_ne: 0x47,
  i32_gt_s: 0x4a,
  i32_gt_u: 0x4b,
  i32_le_s: 0x4c,
  i32_ge_s: 0x4e,
  i32_ge_u: 0x4f,
  i64_eqz: 0x50,
  i64_eq: 0x51,
  i64_ne: 0x52,
  i64_lt_s: 0x53,
  i64_lt_u: 0x54,
  i64_gt_s: 0x55,
  i64_gt_u: 0x56,
  i64_ge_s: 0x59,
  i64_ge_u: 0x5a,
  i32_clz: 0x67,
  i32_ctz: 0x68,
  i32_popcnt: 0x69,
  i32_add: 0x6a,
  i32_sub: 0x6b,
  i32_and: 0x71,
  i32_mul: 0x6c,
  i32_div_s: 0x6d,
  i32_div_u: 0x6e,
  i32_rem_s: 0x6f,
  i32_rem_u: 0x70,
  i32_shl: 0x74,
  i32_shr_s: 0x75,
  i32_shr_u: 0x76,
  i32_xor: 0x73,
  i32_rotl: 0x77,
  i32_rotr: 0x78,
  i64_clz: 0x79,
  i64_ctz: 0x7a,
  i64_popcnt: 0x7b,
  i64_add: 0x7c,
  i64_sub: 0x7d,
  i64_mul: 0x7e,
  i64_div_s: 0x7f,
  i64_div_u: 0x80,
  i64_rem_s: 0x81,
  i64_rem_u: 0x82,
  i64_and: 0x83,
  i64_or: 0x84,
  i64_xor: 0x85,
  i64_shl: 0x86,
  i64_shr_s: 0x87,
  i64_shr_u: 0x88,
  i64_rotl: 0x89,
  i64_rotr: 0x8a,
  i32_wrap_i64: 0xa7,
  i64_extend_i32_s: 0xac,
  i64_extend_i32_u: 0xad,
  i64_extend8_s: 0xc2,
  i64_extend16_s: 0xc3,
  i64_extend32_s: 0xc4,
} as const;

export const I32 = 0x7f;
export const I64 = 0x7e;
/** Block type of a structured instruction with no result. */
export const VOID = 0x40;

export class ByteWriter {
  private buf = new Uint8Array(256);
  length = 0;

  byte(b: number): this {
    if (this.length === this.buf.length) {
      const n = new Uint8Array(this.buf.length * 2);
      n.set(this.buf);
      this.buf = n;
    }
    this.buf[this.length++] = b;
    return this;
  }
  bytes(bs: ArrayLike<number>): this {
    this.reserve(bs.length);
    if (bs instanceof Uint8Array) {
      // Function bodies are copied into the module this way: one copy, not a loop per byte.
      this.buf.set(bs, this.length);
      this.length += bs.length;
      return this;
    }
    for (let i = 0; i < bs.length; i++) this.buf[this.length++] = bs[i]!;
    return this;
  }
  /** Room for n more bytes (translation time matters: a boot translates thousands of blocks). */
  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.length));
    this.buf = b;
  }
  u32(v: number): this {
    let x = v >>> 0;
    do {
      const b = x & 0x7f;
      x >>>= 7;
      this.byte(x !== 0 ? b | 0x80 : b);
    } while (x !== 0);
    return this;
  }
  /** Signed LEB128 of a value that fits in 64 bits. */
  s64(v: bigint): this {
    if (v >= -0x8000_0000n && v <= 0x7fff_ffffn) return this.s32(Number(v));
    let x = BigInt.asIntN(64, v);
    for (;;) {
      const b = Number(x & 0x7fn);
      x >>= 7n;
      const done = (x === 0n && (b & 0x40) === 0) || (x === -1n && (b & 0x40) !== 0);
      this.byte(done ? b : b | 0x80);
      if (done) return this;
    }
  }
  /** Signed LEB128 of a 32-bit value, in plain numbers (BigInt arithmetic is slow). */
  s32(v: number): this {
    let x = v | 0;
    for (;;) {
      const b = x & 0x7f;
      x >>= 7;
      const done = (x === 0 && (b & 0x40) === 0) || (x === -1 && (b & 0x40) !== 0);
      this.byte(done ? b : b | 0x80);
      if (done) return this;
    }
  }
  op(o: number): this {
    return this.byte(o);
  }
  i32c(v: number): this {
    return this.byte(Op.i32_const).s32(v);
  }
  i64c(v: bigint): this {
    return this.byte(Op.i64_const).s64(v);
  }
  get(l: number): this {
    return this.byte(Op.local_get).u32(l);
  }
  set(l: number): this {
    return this.byte(Op.local_set).u32(l);
  }
  /** A load or store with its memarg (log2 alignment, offset). */
  mem(o: number, alignLog2: number, offset: number): this {
    return this.byte(o).u32(alignLog2).u32(offset);
  }
  /** A section or vector body, prefixed by its byte length. */
  sized(w: ByteWriter): this {
    this.u32(w.length);
    return this.bytes(w.view());
  }
  view(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

export interface FuncType {
  params: number[];
  results: number[];
}

export interface FuncImport {
  name: string;
  type: number;
}

export interface FuncBody {
  type: number;
  /** Extra locals after the parameters, in order. */
  locals: number[];
  /** The body's instructions, as written or as a copy of a writer's view. */
  code: ByteWriter | Uint8Array;
  exportName?: string;
}

function name(w: ByteWriter, s: string): void {
  const b = Buffer.from(s, 'utf8');
  w.u32(b.length).bytes(b);
}

/**
 * Builds a module importing env.memory and `imports` (as env.NAME), exporting the `funcs` that
 * have an export name.
 */
export function buildModule(
  types: FuncType[],
  imports: FuncImport[],
  funcs: FuncBody[],
  opts: { table?: boolean } = {},
): Uint8Array<ArrayBuffer> {
  const out = new ByteWriter();
  out.bytes([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
  const section = (id: number, body: ByteWriter) => out.byte(id).sized(body);

  const t = new ByteWriter().u32(types.length);
  for (const ft of types) {
    t.byte(0x60).u32(ft.params.length).bytes(ft.params).u32(ft.results.length).bytes(ft.results);
  }
  section(1, t);

  const im = new ByteWriter().u32(imports.length + 1 + (opts.table ? 1 : 0));
  name(im, 'env');
  name(im, 'memory');
  im.byte(0x02).byte(0x00).u32(1); // memory, min 1 page, no maximum
  if (opts.table) {
    name(im, 'env');
    name(im, 'table');
    im.byte(0x01).byte(0x70).byte(0x00).u32(1); // table 0: funcref, min 1, no maximum
  }
  for (const i of imports) {
    name(im, 'env');
    name(im, i.name);
    im.byte(0x00).u32(i.type);
  }
  section(2, im);

  const fs = new ByteWriter().u32(funcs.length);
  for (const f of funcs) fs.u32(f.type);
  section(3, fs);

  const exported = funcs.flatMap((f, i) => (f.exportName ? [{ n: f.exportName, i }] : []));
  const ex = new ByteWriter().u32(exported.length);
  for (const { n, i } of exported) {
    name(ex, n);
    ex.byte(0x00).u32(imports.length + i);
  }
  section(7, ex);

  const code = new ByteWriter().u32(funcs.length);
  for (const f of funcs) {
    const body = new ByteWriter();
    // Locals as runs of equal types.
    const runs: [number, number][] = [];
    for (const l of f.locals) {
      const last = runs[runs.length - 1];
      if (last && last[1] === l) last[0]++;
      else runs.push([1, l]);
    }
    body.u32(runs.length);
    for (const [n, ty] of runs) body.u32(n).byte(ty);
    body.bytes(f.code instanceof Uint8Array ? f.code : f.code.view()).byte(Op.end);
    code.sized(body);
  }
  section(10, code);
  return new Uint8Array(out.view());
}
