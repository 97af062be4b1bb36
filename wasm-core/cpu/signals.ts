// Flags through which slow paths ask the interpreter loop for attention. The loop tests one
// global per instruction (`Signals.attention`); everything rare hangs off it.

export const EXIT_BUDGET: i32 = 0;
export const EXIT_WFI: i32 = 1;
export const EXIT_TOHOST: i32 = 2;
export const EXIT_HOST: i32 = 3;

export class Signals {
  /** Something needs a look before the next instruction: interrupts, or a requested exit. */
  static attention: bool = true;
  /** Non-zero asks the loop to end the slice with this reason. */
  static exitReason: i32 = 0;
}

@inline
export function requestAttention(): void {
  Signals.attention = true;
}
