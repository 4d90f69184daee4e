import { z } from 'zod';
import { mappingsSchema } from '../destinations/x-ads/x-ads-config.js';
import { nameSchema } from './names.js';

/**
 * One entry of `suppression:` in tailor.yml: a model whose rows are people who must never be in any
 * audience (opt-outs, "do not sell or share" requests, erasures), with its own column -> identifier
 * mappings. A member of any activation is suppressed when any of its identifiers, normalized and
 * hashed, matches one of these rows' (docs/suppression.md).
 */
export const suppressionEntrySchema = z.strictObject({
  model: nameSchema,
  mappings: mappingsSchema.refine((m) => Object.keys(m).length > 0, {
    message: 'map at least one column to an identifier type',
  }),
  /** ISO 3166-1 alpha-2 region for phone numbers without a country code; the destination's default otherwise. */
  phone_default_region: z.string().length(2).toUpperCase().optional(),
});
export type SuppressionEntry = z.infer<typeof suppressionEntrySchema>;

export const suppressionConfigSchema = z.array(suppressionEntrySchema).superRefine((entries, ctx) => {
  const seen = new Set<string>();
  entries.forEach((entry, index) => {
    if (seen.has(entry.model))
      ctx.addIssue({
        code: 'custom',
        path: [index, 'model'],
        message: `model ${entry.model} is listed twice`,
      });
    seen.add(entry.model);
  });
});

/**
 * The state id a suppression model's hashes are kept under (its own members and member_hashes rows,
 * diffed incrementally like an activation's). Activation ids may not take this prefix.
 */
export const SUPPRESSION_STATE_PREFIX = 'suppression__';

export function suppressionStateId(model: string): string {
  return `${SUPPRESSION_STATE_PREFIX}${model}`;
}

/**
 * The state id under which an activation records the suppressed hashes already deleted from its
 * audience, for upsert mode (whose state forgets segment leavers that X still holds). `:` keeps it
 * apart from any activation or suppression state id.
 */
export function suppressionAppliedId(activationId: string): string {
  return `suppression-applied:${activationId}`;
}
