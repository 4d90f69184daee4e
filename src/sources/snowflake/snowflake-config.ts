import { z } from 'zod';
import { secret } from '../../config/secret.js';

/** `warehouse:` for Snowflake. Key-pair authentication is preferred; a password also works. */
export const snowflakeConfigSchema = z.strictObject({
  type: z.literal('snowflake'),
  account: z.string().min(1),
  username: z.string().min(1),
  private_key: secret(z.string().min(1)).optional(),
  private_key_path: z.string().min(1).optional(),
  private_key_passphrase: secret(z.string().min(1)).optional(),
  password: secret(z.string().min(1)).optional(),
  role: z.string().min(1).optional(),
  warehouse: z.string().min(1),
  database: z.string().min(1),
  schema: z.string().min(1).default('PUBLIC'),
  /** Override of the account URL, for tests against a local fake. */
  access_url: z.string().url().optional(),
});
export type SnowflakeConfig = z.infer<typeof snowflakeConfigSchema>;
