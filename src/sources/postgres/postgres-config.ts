import { z } from 'zod';
import { secret } from '../../config/secret.js';

/** `warehouse:` for a PostgreSQL server. */
export const postgresConfigSchema = z.strictObject({
  type: z.literal('postgres'),
  /** A libpq URL; it may carry a password, so it is treated as a secret. */
  url: secret(z.string().min(1)),
  /** Connections in the pool (the diff holds one; the rest serve reads and commits). */
  pool_size: z.number().int().min(1).max(64).default(4),
  /** Rows fetched per round trip when streaming the delta (measured: 100 is 3x slower than 1,000+). */
  fetch_size: z.number().int().min(1000).max(100_000).default(5000),
});
export type PostgresConfig = z.infer<typeof postgresConfigSchema>;
