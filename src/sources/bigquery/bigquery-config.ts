import { z } from 'zod';
import { secret } from '../../config/secret.js';

/**
 * `warehouse:` for BigQuery. Credentials come from `key_file`, from `key_json` (usually
 * `${GOOGLE_KEY_JSON}`), or, when neither is set, from application default credentials.
 * The state lives in the dataset named by `state_dataset`, or by the project's `state_schema`.
 */
export const bigqueryConfigSchema = z.strictObject({
  type: z.literal('bigquery'),
  project_id: z.string().min(1),
  location: z.string().min(1).default('US'),
  state_dataset: z.string().min(1).optional(),
  key_file: z.string().min(1).optional(),
  key_json: secret(z.string().min(1)).optional(),
  /** Override of the API root, for tests against a local fake. */
  api_endpoint: z.string().url().optional(),
});
export type BigqueryConfig = z.infer<typeof bigqueryConfigSchema>;
