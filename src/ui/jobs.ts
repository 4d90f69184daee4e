import { randomUUID } from 'node:crypto';
import type { SyncProgress, SyncReport } from '../sync/types.js';

export type JobKind = 'activate' | 'run' | 'plan' | 'full_resync';

/** A long action started from the UI (a run, a plan, an activation), watched over server-sent events. */
export interface Job {
  id: string;
  kind: JobKind;
  activationId: string;
  startedAt: Date;
  state: 'running' | 'finished';
  /** What it is doing now, in words ("writing tailor.yml", "syncing"). */
  step: string;
  progress: SyncProgress | null;
  report: SyncReport | null;
  /** An error that stopped the job before a run could report (a config the edit would break). */
  error: string | null;
}

export type JobEvent = { type: 'progress'; job: Job } | { type: 'done'; job: Job };

/** How many finished jobs are kept to be looked at again. */
const KEEP_FINISHED = 100;

export class Jobs {
  readonly #jobs = new Map<string, Job>();
  readonly #listeners = new Map<string, Set<(event: JobEvent) => void>>();
  readonly #controller = new AbortController();
  readonly #pending = new Set<Promise<void>>();

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get(id: string): Job | undefined {
    return this.#jobs.get(id);
  }

  /** The job running for an activation, if any: one at a time per activation from this UI. */
  running(activationId: string): Job | undefined {
    return [...this.#jobs.values()].find(
      (job) => job.activationId === activationId && job.state === 'running',
    );
  }

  list(): Job[] {
    return [...this.#jobs.values()].sort((a, b) => b.startedAt.getTime() - a.startedAt.getTime());
  }

  /**
   * Starts `work` in the background and returns its job at once. `work` reports progress through
   * the callbacks; its report (or its error) ends the job.
   */
  start(
    kind: JobKind,
    activationId: string,
    work: (hooks: {
      step(text: string): void;
      progress(p: SyncProgress): void;
      signal: AbortSignal;
    }) => Promise<SyncReport>,
  ): Job {
    const job: Job = {
      id: randomUUID(),
      kind,
      activationId,
      startedAt: new Date(),
      state: 'running',
      step: 'starting',
      progress: null,
      report: null,
      error: null,
    };
    this.#jobs.set(job.id, job);
    this.#trim();
    const emit = (type: JobEvent['type']) => {
      for (const listener of this.#listeners.get(job.id) ?? []) listener({ type, job });
    };
    const done = work({
      step: (text) => {
        job.step = text;
        emit('progress');
      },
      progress: (p) => {
        job.progress = p;
        emit('progress');
      },
      signal: this.#controller.signal,
    })
      .then(
        (report) => {
          job.report = report;
        },
        (error: unknown) => {
          job.error = error instanceof Error ? error.message : String(error);
        },
      )
      .finally(() => {
        job.state = 'finished';
        job.step = 'finished';
        emit('done');
        this.#listeners.delete(job.id);
      });
    this.#pending.add(done);
    void done.finally(() => this.#pending.delete(done));
    return job;
  }

  /** Hears a job's events until it ends; returns the unsubscribe function. */
  subscribe(id: string, listener: (event: JobEvent) => void): () => void {
    let set = this.#listeners.get(id);
    if (!set) this.#listeners.set(id, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Running jobs, to wait for on shutdown. */
  get active(): number {
    return [...this.#jobs.values()].filter((job) => job.state === 'running').length;
  }

  /** Resolves once every running job has ended. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#pending]);
  }

  abort(): void {
    this.#controller.abort();
  }

  #trim(): void {
    const finished = this.list().filter((job) => job.state === 'finished');
    for (const job of finished.slice(KEEP_FINISHED)) this.#jobs.delete(job.id);
  }
}
