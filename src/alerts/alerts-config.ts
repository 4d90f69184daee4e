import { z } from 'zod';
import { secret } from '../config/secret.js';

/** The state changes an alert can be sent for. */
export const ALERT_EVENTS = [
  'run_failed',
  'run_held',
  'activation_paused',
  'not_targetable',
  'low_match_rate',
  'recovered',
] as const;
export type AlertEventKind = (typeof ALERT_EVENTS)[number];

const webhookUrl = secret(
  z
    .string()
    .url({ message: 'must be a URL such as https://hooks.slack.com/services/...' })
    .refine((url) => /^https?:/i.test(url), { message: 'must be an http(s) URL' }),
);

/** `alerts.<name>` in tailor.yml: one webhook and the events it wants. */
export const alertConfigSchema = z.strictObject({
  /** `slack`: a Slack incoming webhook (text + blocks); `webhook`: a generic JSON POST. */
  type: z.enum(['slack', 'webhook']),
  /** The webhook URL: a secret (it is the credential), usually `${SLACK_WEBHOOK_URL}`. */
  url: webhookUrl,
  events: z
    .array(z.enum(ALERT_EVENTS))
    .min(1, { message: `name at least one event (${ALERT_EVENTS.join(', ')})` })
    .default([...ALERT_EVENTS]),
  /** Only these activations (default: every one). */
  activations: z.array(z.string()).optional(),
  /** `not_targetable`: how long after an audience's first sync it may still be not targetable. */
  not_targetable_after_hours: z.number().positive().default(48),
  /** `low_match_rate`: the lowest acceptable matched ÷ sent ratio. */
  min_match_rate: z.number().min(0).max(1).default(0.2),
  /** `low_match_rate`: how long after the first sync the rate is judged (X needs hours to size an audience). */
  match_rate_after_hours: z.number().positive().default(24),
  /** Delivery: attempts in all, and the first delay between them (doubling, with jitter). */
  retry: z
    .strictObject({
      attempts: z.number().int().min(1).max(10).default(4),
      initial_delay_ms: z.number().int().min(0).default(1000),
      max_delay_ms: z.number().int().min(0).default(30_000),
      timeout_ms: z.number().int().min(1).default(10_000),
    })
    .prefault({}),
});
export type AlertConfig = z.infer<typeof alertConfigSchema>;

export const alertsConfigSchema = z.record(
  z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,62}$/, { message: 'alert names are letters, digits, _ and -' }),
  alertConfigSchema,
);
export type AlertsConfig = z.infer<typeof alertsConfigSchema>;
