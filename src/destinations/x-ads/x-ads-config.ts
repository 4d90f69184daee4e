import { z } from 'zod';
import { activationModeSchema } from '../../config/activation-mode.js';
import { secret } from '../../config/secret.js';
import { isLoopbackHost } from './api-url.js';
import { X_IDENTIFIER_TYPES } from './identifier-types.js';

/** `api_url: embedded`: the local X Ads API emulator, started in process by the CLI. */
export const EMBEDDED_API_URL = 'embedded';

export const identifierTypeSchema = z.enum(X_IDENTIFIER_TYPES, {
  error: (issue) =>
    `unknown identifier type ${JSON.stringify(issue.input)} (expected one of ${X_IDENTIFIER_TYPES.join(', ')})`,
});

/** column name -> X identifier type. */
export const mappingsSchema = z.record(z.string().min(1), identifierTypeSchema);

/** The default activation settings a destination gives every `tailor activate`. */
export const xAdsDefaultsSchema = z.strictObject({
  audience_name: z.string().min(1).default('Tailor: {model}'),
  audience_description: z.string().default('{description}'),
  schedule: z.string().default('every 6 hours'),
  phone_default_region: z.string().length(2).toUpperCase().default('US'),
  mode: activationModeSchema.default('mirror'),
  mappings: mappingsSchema.default({}),
});

/**
 * Limits and tolerances for facts X documents loosely or not at all (https://docs.x.com/x-ads-api/audiences;
 * https://docs.x.com/x-ads-api/fundamentals/rate-limiting): they are settings so
 * that a user can follow the real API where it turns out to differ, without a release.
 */
export const xAdsLimitsSchema = z.strictObject({
  /** X documents 2,500 operations per request (§6.2). */
  max_operations: z.number().int().min(1).max(2500).default(2500),
  /** X documents 5,000,000 bytes per request; RudderStack keeps to 4,000,000 (§6.2). */
  max_request_bytes: z.number().int().min(10_000).max(5_000_000).default(4_000_000),
  /** Users endpoint: 1,500 requests a minute per account (§9.1). */
  users_requests_per_minute: z.number().int().min(1).max(1500).default(1500),
  /** Audience writes (POST/PUT/DELETE): 450 a minute (§9.1). */
  writes_per_minute: z.number().int().min(1).max(450).default(450),
  /** One HTTP request may take this long before it is abandoned and retried. */
  request_timeout_ms: z.number().int().min(100).default(120_000),
  /** Retries of one request stop after this long in total. */
  retry_deadline_ms: z
    .number()
    .int()
    .min(0)
    .default(15 * 60_000),
  /**
   * How long X may still apply a users request whose answer Tailor never saw (a timeout, a dropped
   * connection, a crash). X documents that audience changes are processed asynchronously, in up to
   * 48 hours (§10); whether a request it did not answer can be applied that late is not documented,
   * so the window is a setting, 48 hours by default. Deletes of hashes such a request added are
   * repeated on later runs for this long.
   */
  late_apply_window_hours: z
    .number()
    .min(0)
    .max(24 * 30)
    .default(48),
});

export const xAdsDestinationSchema = z.strictObject({
  type: z.literal('x_ads'),
  /** Ad account ids are base-36 strings (§4), never numbers. */
  account_id: z
    .string()
    .regex(/^[0-9a-zA-Z]+$/, { message: 'must be the base-36 ad account id, e.g. 18ce54d4x5t' })
    .transform((id) => id.toLowerCase()),
  /**
   * X serves only HTTPS (https://docs.x.com/x-ads-api/fundamentals/making-authenticated-requests) and every
   * request carries the OAuth credentials, so plain
   * http is accepted only for a loopback host: a local emulator. `embedded` asks the CLI to run the
   * local emulator in its own process for each command that talks to X (state in
   * `.tailor/emulator.json`, the demo account and credentials), as `pglite` does for the warehouse;
   * the CLI replaces it by that emulator's URL before a destination is created.
   */
  api_url: z
    .string()
    .superRefine((value, ctx) => {
      if (value === EMBEDDED_API_URL) return;
      const url = URL.parse(value);
      if (!url) {
        ctx.addIssue({
          code: 'custom',
          message: `must be a URL (https://ads-api.x.com) or "${EMBEDDED_API_URL}" (the local emulator, run in process)`,
        });
      } else if (!(url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname)))) {
        ctx.addIssue({
          code: 'custom',
          message: 'must be https (plain http only for a loopback host: 127.0.0.0/8, ::1, localhost)',
        });
      }
    })
    .default('https://ads-api.x.com'),
  /**
   * Where `tailor connect` signs in (X's OAuth 1.0a endpoints live on X's API host, not the Ads host).
   * Unset: https://api.x.com, or the api_url itself when that is a local emulator (it serves both).
   */
  oauth_url: z
    .string()
    .refine(
      (value) => {
        const url = URL.parse(value);
        return (
          url !== null &&
          (url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname)))
        );
      },
      { message: 'must be an https URL (https://api.x.com; plain http only for a loopback host)' },
    )
    .optional(),
  credentials: z.strictObject({
    consumer_key: secret(z.string().min(1)),
    consumer_secret: secret(z.string().min(1)),
    access_token: secret(z.string().min(1)),
    access_token_secret: secret(z.string().min(1)),
  }),
  defaults: xAdsDefaultsSchema.default(xAdsDefaultsSchema.parse({})),
  limits: xAdsLimitsSchema.default(xAdsLimitsSchema.parse({})),
});
export type XAdsDestinationConfig = z.infer<typeof xAdsDestinationSchema>;
export type XAdsLimits = z.infer<typeof xAdsLimitsSchema>;
export type Mappings = z.infer<typeof mappingsSchema>;
