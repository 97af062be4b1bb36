/**
 * Counters of the user network: what it did and, above all, what it dropped and why (a guest's
 * hostile or unsupported traffic is counted, never thrown on). Names become `user_*` stats.
 */
export class Counters {
  readonly values: Record<string, number> = Object.create(null) as Record<string, number>;

  count(name: string, n = 1): void {
    this.values[name] = (this.values[name] ?? 0) + n;
  }

  get(name: string): number {
    return this.values[name] ?? 0;
  }
}
