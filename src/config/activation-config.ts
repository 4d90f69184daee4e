import { z } from 'zod';
import { mappingsSchema } from '../destinations/x-ads/x-ads-config.js';
import { activationModeSchema } from './activation-mode.js';
import { nameSchema } from './names.js';

/** `audience:` of an activation: a name (found or created) or the id of an existing audience. */
export const audienceRefSchema = z.union([
  z.strictObject({ name: z.string().min(1).max(255), description: z.string().optional() }),
  z.strictObject({
    id: z.string().regex(/^[0-9a-zA-Z]+$/, { message: 'must be an audience id such as 1nmth' }),
  }),
]);

/** One entry of `activations:` in tailor.yml. Unset settings fall back to the destination's defaults. */
export const activationConfigSchema = z.strictObject({
  model: nameSchema,
  destination: z.string().min(1),
  audience: audienceRefSchema.optional(),
  mappings: mappingsSchema.optional(),
  schedule: z.string().optional(),
  /** IANA time zone for cron schedules; UTC by default. */
  timezone: z.string().optional(),
  mode: activationModeSchema.optional(),
  enabled: z.boolean().default(true),
  phone_default_region: z.string().length(2).toUpperCase().optional(),
  /** A run that would remove more than this share of the audience is held unless forced. */
  max_removal_share: z.number().min(0).max(1).default(0.5),
  /** Members whose last acknowledged Update is older than this are re-sent (X expires them at 13 months). */
  refresh_after_days: z.number().int().min(1).max(390).default(335),
});
export type ActivationConfig = z.infer<typeof activationConfigSchema>;
export type AudienceRef = z.infer<typeof audienceRefSchema>;
