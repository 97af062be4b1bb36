// The core module (dist/wasm/core.wasm): the interpreter alone. index-jit.ts is the build with
// the JIT's hooks (core-jit.wasm), which main/vm/core.ts loads when the JIT is on.
import { interpret } from './cpu/interpreter';
import { runHarts } from './cpu/smp';
import { Harts } from './cpu/state';

export * from './core-exports';

/** Runs up to `budget` instructions; returns the exit reason (EXIT_* in cpu/signals.ts). */
export function run(budget: i32): i32 {
  return Harts.count == 1 ? interpret<u8>(budget) : runHarts<u8>(budget);
}
