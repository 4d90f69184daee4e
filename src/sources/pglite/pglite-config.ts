import { z } from 'zod';

/** `warehouse:` for the embedded PGlite warehouse: a file-backed data directory, never in memory. */
export const pgliteConfigSchema = z.strictObject({
  type: z.literal('pglite'),
  /** The data directory, relative to the project directory (a `file:` prefix is accepted). */
  url: z.string().min(1),
  fetch_size: z.number().int().min(1000).max(100_000).default(5000),
});
export type PgliteConfig = z.infer<typeof pgliteConfigSchema>;
