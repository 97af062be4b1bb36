// How slow paths ask the interpreter loop for attention. The loop compares instret with one
// global per instruction (`Signals.stopAt`): the end of the slice's budget, or 0 when something
// rare needs a look (an interrupt, a requested exit, a changed mapping), so the budget check
// and the attention check are one compare.

export const EXIT_BUDGET: i32 = 0;
export const EXIT_WFI: i32 = 1;
export const EXIT_TOHOST: i32 = 2;
export const EXIT_HOST: i32 = 3;
/** A hart gave up the rest of its turn (PAUSE with several harts); cpu/smp.ts takes it. */
export const EXIT_YIELD: i32 = 4;

export class Signals {
  /** The loop runs while instret < stopAt; requestAttention() sets it to 0. */
  static stopAt: u64 = 0;
  /** Non-zero asks the loop to end the slice with this reason. */
  static exitReason: i32 = 0;
}

@inline
export function requestAttention(): void {
  Signals.stopAt = 0;
}
