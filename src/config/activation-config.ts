import { z } from 'zod';
import { mappingsSchema } from '../destinations/x-ads/x-ads-config.js';
import { activationModeSchema } from './activation-mode.js';
import { nameSchema } from './names.js';

/**
 * The longest audience name, in Unicode code points (an emoji counts one, not the two UTF-16 units of
 * `String#length`). X documents no limit on names; its `q` name filter takes 1-255 characters
 * (https://docs.x.com/x-ads-api/audiences/reference) without saying what a character is. So both the
 * limit and the unit are a choice, made the same way in the emulator, whose `maxNameLength` switch
 * moves its limit the day X's real one is learned.
 */
export const MAX_AUDIENCE_NAME_LENGTH = 255;

/** Code points in `text`, counted here rather than left to the validation library's notion of length. */
export function codePointLength(text: string): number {
  let count = 0;
  for (const _ of text) count += 1;
  return count;
}

const audienceNameSchema = z
  .string()
  .min(1)
  .refine((name) => codePointLength(name) <= MAX_AUDIENCE_NAME_LENGTH, {
    message: `must be at most ${MAX_AUDIENCE_NAME_LENGTH} characters (Unicode code points: an emoji counts one)`,
  });

/** `audience:` of an activation: a name (found or created) or the id of an existing audience. */
export const audienceRefSchema = z.union([
  z.strictObject({ name: audienceNameSchema, description: z.string().optional() }),
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
