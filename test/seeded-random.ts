/**
 * A seeded xorshift32 generator for tests that must replay a failure from its seed: returns a
 * function giving integers in [0, n). Not for anything that needs real randomness.
 */
export function xorshift(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n: number) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % n;
  };
}
