/** The process's memory in MB, for debug logs. */
export function memoryMb(): Record<string, number> {
  const { rss, heapUsed, external } = process.memoryUsage();
  const mb = (bytes: number) => Math.round(bytes / 1_048_576);
  return { rssMb: mb(rss), heapMb: mb(heapUsed), externalMb: mb(external) };
}

/** Milliseconds by step, measured lap by lap (for debug logs). */
export class StepTimer {
  readonly #totals: Record<string, number> = {};
  #last = performance.now();

  add(step: string, ms: number): void {
    this.#totals[step] = (this.#totals[step] ?? 0) + ms;
  }

  /** Adds the time since the previous lap to `step`. */
  lap(step: string): void {
    const now = performance.now();
    this.add(step, now - this.#last);
    this.#last = now;
  }

  totals(): Record<string, number> {
    return Object.fromEntries(Object.entries(this.#totals).map(([k, v]) => [k, Math.round(v)]));
  }
}
