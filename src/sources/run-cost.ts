/**
 * A run's cost as the warehouse reports it (BigQuery's bytes and jobs, Snowflake's query ids): a
 * mark taken when the run starts, and at its end the cost of what ran since. Several activations running at once in one process share the source, so each
 * run's figure then also counts the others' statements of the same period.
 */
export class RunCostMarks {
  readonly #marks = new Map<string, number>();
  readonly #options: {
    costMark?: (() => number) | undefined;
    costSince?: ((mark: number) => Record<string, unknown>) | undefined;
  };

  constructor(options: {
    costMark?: (() => number) | undefined;
    costSince?: ((mark: number) => Record<string, unknown>) | undefined;
  }) {
    this.#options = options;
  }

  /** Notes where the run starts (nothing when the source reports no cost). */
  start(runId: string): void {
    if (this.#options.costMark) this.#marks.set(runId, this.#options.costMark());
  }

  /** The warehouse's figures since `start` (null when it reports none), and forgets the mark. */
  finish(runId: string): Record<string, unknown> | null {
    const mark = this.#marks.get(runId);
    this.#marks.delete(runId);
    if (mark === undefined || !this.#options.costSince) return null;
    return this.#options.costSince(mark);
  }
}
