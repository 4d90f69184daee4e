import type { Logger } from 'pino';
import { matchRateJson } from '../sync/match-rate.js';
import type { AlertEvent } from './alert-events.js';
import type { AlertConfig, AlertEventKind, AlertsConfig } from './alerts-config.js';

const TITLES: Record<AlertEventKind, string> = {
  run_failed: 'Run failed',
  run_held: 'Run held',
  activation_paused: 'Activation paused',
  not_targetable: 'Audience not targetable',
  low_match_rate: 'Low match rate',
  recovered: 'Recovered',
};

/**
 * Slack's incoming-webhook payload: `text` (the notification's fallback) and Block Kit `blocks`.
 * https://api.slack.com/messaging/webhooks and https://api.slack.com/reference/block-kit/blocks
 */
export function slackPayload(event: AlertEvent) {
  const title = `Tailor: ${TITLES[event.kind]}: ${event.activationId}`;
  const context = [
    `event \`${event.kind}\``,
    ...(event.runId ? [`run \`${event.runId}\``] : []),
    ...(event.audienceId ? [`audience \`${event.audienceId}\``] : []),
    event.at.toISOString(),
  ].join(' · ');
  return {
    text: `${title}: ${event.message}`,
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: title.slice(0, 150) } },
      { type: 'section', text: { type: 'mrkdwn', text: event.message.slice(0, 3000) } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: context }] },
    ],
  };
}

/** The generic webhook's JSON body (snake_case, as every machine-facing output of Tailor). */
export function webhookPayload(event: AlertEvent) {
  return {
    source: 'tailor',
    event: event.kind,
    activation: event.activationId,
    message: event.message,
    run_id: event.runId,
    audience_id: event.audienceId,
    at: event.at.toISOString(),
    ...(event.matchRate ? { match_rate: matchRateJson(event.matchRate) } : {}),
  };
}

export interface NotifierDeps {
  logger: Logger;
  /** Waits between attempts (tests pass a fast one through `retry.initial_delay_ms`, not this). */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Whether an HTTP status is worth another attempt (rate limited, or the receiver's own trouble). */
const retryable = (status: number) => status === 429 || status === 408 || status >= 500;

/**
 * Sends alerts to the webhooks of tailor.yml's `alerts:`. Each delivery is retried with exponential
 * backoff and jitter, logged by alert name and event (never the URL: it is the secret), and never
 * throws: a failing webhook never fails a sync.
 */
export class AlertNotifier {
  readonly #alerts: [string, AlertConfig][];
  readonly #deps: NotifierDeps;

  constructor(alerts: AlertsConfig | undefined, deps: NotifierDeps) {
    this.#alerts = Object.entries(alerts ?? {});
    this.#deps = deps;
  }

  get configured(): boolean {
    return this.#alerts.length > 0;
  }

  /** The alerts that want events of this kind for this activation. */
  wanting(kind: AlertEventKind, activationId: string): [string, AlertConfig][] {
    return this.#alerts.filter(
      ([, alert]) =>
        alert.events.includes(kind) && (!alert.activations || alert.activations.includes(activationId)),
    );
  }

  /** The alerts configured for an activation, whatever their events. */
  forActivation(activationId: string): [string, AlertConfig][] {
    return this.#alerts.filter(([, alert]) => !alert.activations || alert.activations.includes(activationId));
  }

  /** Delivers each event to one alert; resolves when every delivery has succeeded or given up. */
  async deliver(name: string, alert: AlertConfig, events: readonly AlertEvent[]): Promise<void> {
    await Promise.all(
      events
        .filter((event) => alert.events.includes(event.kind))
        .map((event) => this.#send(name, alert, event)),
    );
  }

  /** Delivers events to every alert that wants them. */
  async notify(events: readonly AlertEvent[]): Promise<void> {
    await Promise.all(
      events.flatMap((event) =>
        this.wanting(event.kind, event.activationId).map(([name, alert]) => this.#send(name, alert, event)),
      ),
    );
  }

  async #send(name: string, alert: AlertConfig, event: AlertEvent): Promise<boolean> {
    const log = this.#deps.logger.child({ alert: name, event: event.kind, activation: event.activationId });
    const body = JSON.stringify(alert.type === 'slack' ? slackPayload(event) : webhookPayload(event));
    const { attempts, initial_delay_ms: initial, max_delay_ms: max, timeout_ms: timeout } = alert.retry;
    const sleep = this.#deps.sleep ?? wait;
    const random = this.#deps.random ?? Math.random;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      let status: number | null = null;
      let problem: string;
      let retryAfterMs = 0;
      try {
        const response = await fetch(alert.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(timeout),
        });
        status = response.status;
        await response.arrayBuffer().catch(() => undefined);
        if (response.ok) {
          log.info({ attempt }, 'alert sent');
          return true;
        }
        problem = `HTTP ${status}`;
        const after = Number(response.headers.get('retry-after'));
        if (Number.isFinite(after) && after > 0) retryAfterMs = after * 1000;
      } catch (error) {
        // Only the error's name and code: a fetch error's message may repeat the URL (the secret).
        const cause = (error as { cause?: { code?: string } }).cause;
        problem = cause?.code ?? (error instanceof Error ? error.name : 'error');
      }
      const again = attempt < attempts && (status === null || retryable(status));
      if (!again) {
        log.error({ attempt, problem }, 'alert not delivered; giving up (the sync itself is unaffected)');
        return false;
      }
      const backoff = Math.min(max, initial * 2 ** (attempt - 1)) * (0.5 + random() / 2);
      const delayMs = Math.round(Math.min(max, Math.max(backoff, retryAfterMs)));
      log.warn({ attempt, problem, delayMs }, 'alert delivery failed; retrying');
      await sleep(delayMs);
    }
    return false;
  }
}
