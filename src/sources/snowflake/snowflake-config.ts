import { z } from 'zod';
import { secret } from '../../config/secret.js';

/**
 * `warehouse:` for Snowflake. Key-pair authentication (`private_key` or `private_key_path`, with
 * `private_key_passphrase` for an encrypted key) is preferred; `password` also works. The model
 * queries run in `database`.`schema` with `role` and `warehouse`; Tailor's state lives in the
 * project's `state_schema` inside `database`.
 */
export const snowflakeConfigSchema = z
  .strictObject({
    type: z.literal('snowflake'),
    /** The account identifier, e.g. `myorg-myaccount` (or a legacy locator such as `xy12345.us-east-1`). */
    account: z.string().regex(/^[A-Za-z0-9._-]+$/, 'must be an account identifier such as myorg-myaccount'),
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
  })
  .refine((config) => !(config.private_key && config.private_key_path), {
    message: 'set private_key or private_key_path, not both',
    path: ['private_key'],
  })
  .refine((config) => Boolean(config.private_key || config.private_key_path || config.password), {
    message: 'set private_key or private_key_path (key-pair authentication, preferred) or password',
    path: ['password'],
  });
export type SnowflakeConfig = z.infer<typeof snowflakeConfigSchema>;
