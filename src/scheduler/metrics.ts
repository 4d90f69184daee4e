import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { DestinationObserver, RequestEvent } from '../destinations/destination.js';
import type { MatchRate } from '../sync/match-rate.js';
import type { SyncReport } from '../sync/types.js';

/** Why a scheduled tick did not start a run. */
export type SkipReason =
  | 'lock_busy'
  | 'already_ran'
  | 'not_due'
  | 'running_here'
  | 'paused'
  | 'backoff'
  | 'warehouse_error'
  | 'shutting_down';

/** What the scheduler knows of one activation for the time-based gauges, read at scrape time. */
export interface ActivationGaugeSource {
  activations(): { id: string; nextRunAt: Date | null; paused: boolean; consecutiveFailures: number }[];
  inFlight(): number;
}

const MEMBER_COUNTS = ['added', 'removed', 'changed', 'refreshed', 'invalid', 'rejected'] as const;

/**
 * The daemon's Prometheus metrics, in a Registry of their own (never prom-client's global one, so
 * that two schedulers in one process, as in tests, do not share counters).
 */
export class SchedulerMetrics {
  readonly registry = new Registry();
  readonly observer: DestinationObserver;
  #source: ActivationGaugeSource | undefined;
  readonly #runs: Counter<'activation' | 'status'>;
  readonly #members: Counter<'activation' | 'change'>;
  readonly #lastSuccess: Gauge<'activation'>;
  readonly #duration: Histogram<'activation'>;
  readonly #requests: Counter<'destination' | 'endpoint' | 'status'>;
  readonly #retries: Counter<'destination' | 'endpoint' | 'status'>;
  readonly #skipped: Counter<'activation' | 'reason'>;
  readonly #reloads: Counter<'result'>;
  readonly #lastSuccessAt = new Map<string, number>();
  readonly #matchRate: Gauge<'activation' | 'of'>;
  readonly #audienceSize: Gauge<'activation'>;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.#runs = new Counter({
      name: 'tailor_runs_total',
      help: 'Scheduled runs by activation and outcome (succeeded, failed, held)',
      labelNames: ['activation', 'status'],
      registers,
    });
    this.#members = new Counter({
      name: 'tailor_members_total',
      help: 'Members handled by scheduled runs, by activation and change (added, removed, changed, refreshed, invalid, rejected)',
      labelNames: ['activation', 'change'],
      registers,
    });
    this.#lastSuccess = new Gauge({
      name: 'tailor_last_success_timestamp_seconds',
      help: 'When the last successful scheduled run of an activation finished (Unix seconds)',
      labelNames: ['activation'],
      registers,
    });
    this.#matchRate = new Gauge({
      name: 'tailor_audience_match_rate',
      help: "X's matched audience size over members sent with a valid identifier (of=sent) and over the model's rows (of=rows), as of the last successful scheduled run",
      labelNames: ['activation', 'of'],
      registers,
    });
    this.#audienceSize = new Gauge({
      name: 'tailor_audience_size',
      help: "X's matched audience size (audience_size), as of the last successful scheduled run",
      labelNames: ['activation'],
      registers,
    });
    this.#duration = new Histogram({
      name: 'tailor_run_duration_seconds',
      help: 'Duration of scheduled runs',
      labelNames: ['activation'],
      buckets: [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
      registers,
    });
    this.#requests = new Counter({
      name: 'tailor_destination_requests_total',
      help: 'HTTP requests to destinations (X Ads), retries included, by endpoint and status',
      labelNames: ['destination', 'endpoint', 'status'],
      registers,
    });
    this.#retries = new Counter({
      name: 'tailor_destination_retries_total',
      help: 'Retried HTTP requests to destinations (attempt 2 and later), by endpoint and status',
      labelNames: ['destination', 'endpoint', 'status'],
      registers,
    });
    this.#skipped = new Counter({
      name: 'tailor_ticks_skipped_total',
      help: 'Scheduled ticks that started no run, by activation and reason',
      labelNames: ['activation', 'reason'],
      registers,
    });
    this.#reloads = new Counter({
      name: 'tailor_config_reloads_total',
      help: 'Configuration reloads by result (applied, rejected)',
      labelNames: ['result'],
      registers,
    });
    const source = () => this.#source;
    new Gauge({
      name: 'tailor_next_run_timestamp_seconds',
      help: 'When the scheduler next runs an activation (Unix seconds); absent when paused or manual',
      labelNames: ['activation'],
      registers,
      collect() {
        this.reset();
        for (const activation of source()?.activations() ?? []) {
          if (activation.nextRunAt && !activation.paused)
            this.set({ activation: activation.id }, activation.nextRunAt.getTime() / 1000);
        }
      },
    });
    new Gauge({
      name: 'tailor_activation_paused',
      help: '1 when an activation is paused after repeated failures',
      labelNames: ['activation'],
      registers,
      collect() {
        this.reset();
        for (const activation of source()?.activations() ?? [])
          this.set({ activation: activation.id }, activation.paused ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tailor_activation_consecutive_failures',
      help: 'Consecutive failed runs of an activation',
      labelNames: ['activation'],
      registers,
      collect() {
        this.reset();
        for (const activation of source()?.activations() ?? [])
          this.set({ activation: activation.id }, activation.consecutiveFailures);
      },
    });
    new Gauge({
      name: 'tailor_runs_in_flight',
      help: 'Runs in progress in this worker',
      registers,
      collect() {
        this.set(source()?.inFlight() ?? 0);
      },
    });
    this.observer = { onRequest: (event) => this.recordRequest(event) };
  }

  /** X's view of an activation's audience after a run; a ratio X has not computed yet is left unset. */
  recordMatchRate(activationId: string, rate: MatchRate): void {
    if (rate.audienceSize !== null) this.#audienceSize.set({ activation: activationId }, rate.audienceSize);
    for (const [of, value] of [
      ['sent', rate.ofSent],
      ['rows', rate.ofRows],
    ] as const) {
      if (value === null) this.#matchRate.remove({ activation: activationId, of });
      else this.#matchRate.set({ activation: activationId, of }, value);
    }
  }

  /** Where the scrape-time gauges read from (the scheduler, once it runs). */
  attach(source: ActivationGaugeSource): void {
    this.#source = source;
  }

  recordRequest(event: RequestEvent): void {
    const labels = { destination: event.destination, endpoint: event.endpoint, status: String(event.status) };
    this.#requests.inc(labels);
    if (event.attempt > 1) this.#retries.inc(labels);
  }

  recordRun(report: SyncReport, finishedAt: Date): void {
    if (report.status === 'skipped' || report.status === 'running') return;
    const activation = report.activationId;
    this.#runs.inc({ activation, status: report.status });
    this.#duration.observe({ activation }, report.durationMs / 1000);
    for (const change of MEMBER_COUNTS) {
      const value = report.counts[change];
      if (value > 0) this.#members.inc({ activation, change }, value);
    }
    if (report.status === 'succeeded') this.observeSuccess(activation, finishedAt);
  }

  /**
   * A successful run seen in the run log (another worker's, or a `tailor sync` by hand), so the
   * gauge tells the truth about the activation, not only about this worker.
   */
  observeSuccess(activation: string, at: Date): void {
    const seconds = at.getTime() / 1000;
    if ((this.#lastSuccessAt.get(activation) ?? 0) >= seconds) return;
    this.#lastSuccessAt.set(activation, seconds);
    this.#lastSuccess.set({ activation }, seconds);
  }

  /** A run that threw instead of reporting (e.g. a config error), counted as failed. */
  recordRunError(activation: string, durationMs: number): void {
    this.#runs.inc({ activation, status: 'failed' });
    this.#duration.observe({ activation }, durationMs / 1000);
  }

  recordSkip(activation: string, reason: SkipReason): void {
    this.#skipped.inc({ activation, reason });
  }

  recordReload(result: 'applied' | 'rejected'): void {
    this.#reloads.inc({ result });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}
