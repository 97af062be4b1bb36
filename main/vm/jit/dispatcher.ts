/**
 * The dispatcher: a tiny Wasm module owning the function table that translated blocks are
 * placed in, with one function `call(slot, vpc, ctx, budget)` that calls blocks with
 * call_indirect as long as each returns a next slot (chaining, translate.ts) and then returns
 * the budget left. The core imports `call` as env.jitCall (a Wasm-to-Wasm call); table slot 0
 * stays empty. Blocks do not import the table: V8 keeps a list of every instance that imports
 * a table and updates them all on each change, which made thousands of batch modules quadratic.
 */
import { ByteWriter, I32, I64, Op, VOID } from './wasm-emitter.js';

export interface Dispatcher {
  table: WebAssembly.Table;
  call: (slot: number, vpc: bigint, ctx: bigint, budget: number) => number;
}

export function buildDispatcher(): Dispatcher {
  const out = new ByteWriter().bytes([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
  const section = (id: number, body: ByteWriter) => out.byte(id).sized(body);
  const name = (w: ByteWriter, s: string) => w.u32(s.length).bytes(Buffer.from(s, 'ascii'));
  // type 0: a block (i64 vpc, i64 ctx, i32 budget) -> (i64 next vpc, i32 left, i32 next slot);
  // type 1: call (i32 slot, i64 vpc, i64 ctx, i32 budget) -> i32 left
  section(
    1,
    new ByteWriter()
      .u32(2)
      .bytes([0x60, 3, I64, I64, I32, 3, I64, I32, I32])
      .bytes([0x60, 4, I32, I64, I64, I32, 1, I32]),
  );
  section(3, new ByteWriter().u32(1).u32(1));
  section(4, new ByteWriter().u32(1).byte(0x70).byte(0x00).u32(1)); // funcref table, min 1
  const ex = new ByteWriter().u32(2);
  name(ex, 'call');
  ex.byte(0x00).u32(0);
  name(ex, 'table');
  ex.byte(0x01).u32(0);
  section(7, ex);
  const body = new ByteWriter().u32(0); // no locals: the parameters carry the chain
  body.byte(Op.loop).byte(VOID);
  body.get(1).get(2).get(3).get(0).byte(Op.call_indirect).u32(0).u32(0);
  body.set(0).set(3).set(1);
  body.get(0).byte(Op.br_if).u32(0);
  body.byte(Op.end);
  body.get(3).byte(Op.end);
  section(10, new ByteWriter().u32(1).sized(body));
  const inst = new WebAssembly.Instance(new WebAssembly.Module(out.view().slice()));
  return {
    table: inst.exports.table as WebAssembly.Table,
    call: inst.exports.call as Dispatcher['call'],
  };
}
