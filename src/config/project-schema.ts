import { z } from 'zod';
import { alertsConfigSchema } from '../alerts/alerts-config.js';
import { dbtConfigSchema } from '../models/dbt-manifest.js';
import { xAdsDestinationSchema } from '../destinations/x-ads/x-ads-config.js';
import { warehouseConfigSchema } from '../sources/warehouse-config.js';
import { activationConfigSchema } from './activation-config.js';
import { NAME_PATTERN, nameSchema } from './names.js';
import { SUPPRESSION_STATE_PREFIX, suppressionConfigSchema } from './suppression-config.js';

/** Every destination kind; one schema each, kept beside the destination. */
export const destinationConfigSchema = z.discriminatedUnion('type', [xAdsDestinationSchema]);
export type DestinationConfig = z.infer<typeof destinationConfigSchema>;

const destinationNameSchema = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_-]{0,62}$/, { message: 'destination names are letters, digits, _ and -' });

/** The whole of tailor.yml (README.md, "Configuration"). Unknown keys anywhere are errors. */
export const projectConfigSchema = z.strictObject({
  warehouse: warehouseConfigSchema,
  state_schema: nameSchema.default('tailor'),
  /**
   * `demo`: an embedded PGlite warehouse whose data directory does not exist yet is created with the
   * demo sample (customers, orders) by the first command that needs it, so the example project works
   * on a fresh clone. Ignored for any other warehouse.
   */
  sample: z.enum(['demo']).optional(),
  /**
   * `dbt`: models also come from a dbt project's manifest (the dbt models marked for Tailor in their
   * `meta`), beside the native `models/` files.
   */
  models_from: z.enum(['dbt']).optional(),
  /** Where the dbt project and its artifacts are (with `models_from: dbt`). */
  dbt: dbtConfigSchema.optional(),
  destinations: z.record(destinationNameSchema, destinationConfigSchema),
  /** Webhooks (Slack or generic JSON) told of state changes: failed, held, paused, recovered... */
  alerts: alertsConfigSchema.optional(),
  /** Models of people who must never be in any audience (docs/suppression.md). */
  suppression: suppressionConfigSchema.default([]),
  activations: z
    .record(
      z
        .string()
        .regex(NAME_PATTERN, {
          message: 'activation ids must match ^[a-z][a-z0-9_]{0,62}$ (they name warehouse tables)',
        })
        .refine((id) => !id.startsWith(SUPPRESSION_STATE_PREFIX), {
          message: `activation ids may not start with ${SUPPRESSION_STATE_PREFIX} (reserved for suppression state)`,
        }),
      activationConfigSchema,
    )
    .nullish()
    .transform((value) => value ?? {}),
});
export type ProjectConfig = z.infer<typeof projectConfigSchema>;
