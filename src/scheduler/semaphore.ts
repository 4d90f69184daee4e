/** A counting semaphore: at most `limit` holders at once, waiters served in arrival order. */
export class Semaphore {
  readonly limit: number;
  #held = 0;
  #waiters: { resolve: () => void; reject: (error: unknown) => void }[] = [];

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError('a semaphore needs a limit of at least 1');
    this.limit = limit;
  }

  get held(): number {
    return this.#held;
  }

  get waiting(): number {
    return this.#waiters.length;
  }

  /** Resolves once a slot is free; rejects with the signal's reason if it is aborted first. */
  acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#held < this.limit) {
      this.#held++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject,
      };
      const onAbort = () => {
        const index = this.#waiters.indexOf(waiter);
        if (index >= 0) this.#waiters.splice(index, 1);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  release(): void {
    const next = this.#waiters.shift();
    // The slot passes straight to the next waiter, so #held stays the same.
    if (next) next.resolve();
    else this.#held = Math.max(0, this.#held - 1);
  }
}
