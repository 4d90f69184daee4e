import { z } from 'zod';
import { secret } from '../../config/secret.js';

/**
 * `warehouse:` for BigQuery. Credentials come from `key_json` (usually `${GOOGLE_KEY_JSON}`), from
 * `key_file`, or, when neither is set, from application default credentials. The state lives in
 * the dataset named by `state_dataset`, or by the project's `state_schema`.
 */
export const bigqueryConfigSchema = z
  .strictObject({
    type: z.literal('bigquery'),
    /** The project that runs (and is billed for) the query jobs and holds the state dataset. */
    project_id: z
      .string()
      .regex(/^[a-z][a-z0-9-.:]{4,62}[a-z0-9]$/, 'must be a Google Cloud project id, e.g. my-project-123'),
    /** Where jobs run and the state dataset is created; must match the model tables' location. */
    location: z.string().min(1).default('US'),
    /** Dataset for Tailor's state tables; defaults to `state_schema`. */
    state_dataset: z
      .string()
      .regex(/^[A-Za-z0-9_]{1,1024}$/, 'must be a dataset name: letters, digits and underscores')
      .optional(),
    key_file: z.string().min(1).optional(),
    key_json: secret(z.string().min(1)).optional(),
    /** Override of the API root, for tests against a local fake. */
    api_endpoint: z.string().url().optional(),
  })
  .refine((config) => !(config.key_file && config.key_json), {
    message: 'set key_file or key_json, not both (neither: application default credentials)',
    path: ['key_json'],
  });
export type BigqueryConfig = z.infer<typeof bigqueryConfigSchema>;
