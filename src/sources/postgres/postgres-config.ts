import { z } from 'zod';
import { secret } from '../../config/secret.js';

/** The schemes node-postgres reads a connection string with (`socket:` names a Unix socket). */
const SCHEMES = ['postgres:', 'postgresql:', 'socket:'] as const;

const EXAMPLE = 'postgres://user:password@host:5432/database';

/**
 * Why `url` is not a connection string node-postgres can use, or undefined when it is. Checked when
 * tailor.yml loads, so a typo is a configuration error naming the field rather than a connection
 * failure later. The URL may carry a password: a message names the scheme at most, never the URL.
 * A path (`/var/run/postgresql`) is a Unix socket directory, as node-postgres reads it; anything else
 * must be an absolute URL, parsed as node-postgres parses it (spaces percent-encoded first).
 * https://node-postgres.com/features/connecting#connection-uri
 */
export function postgresUrlProblem(url: string): string | undefined {
  if (url.startsWith('/') || /^socket:/i.test(url)) return undefined;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url)?.[1];
  if (scheme === undefined) return `must be a connection URL such as ${EXAMPLE}`;
  if (!(SCHEMES as readonly string[]).includes(`${scheme.toLowerCase()}:`)) {
    const shown = scheme.length <= 20 ? `"${scheme}://"` : 'of its scheme';
    return `unknown scheme ${shown} (use postgres:// or postgresql://, e.g. ${EXAMPLE})`;
  }
  const encoded = /[ %]/.test(url) ? encodeURI(url).replace(/%25(\d\d)/g, '%$1') : url;
  if (!URL.canParse(encoded) && !URL.canParse(encoded.replace('@/', '@___host___/')))
    return (
      `is not a valid connection URL (expected ${EXAMPLE}; the port must be a number, and ` +
      'reserved characters in the user or password, such as @ : / ? #, must be percent-encoded)'
    );
  return undefined;
}

/** The diff session's `work_mem` when `diff_work_mem_mb` is not set (postgres-source.ts). */
export const DIFF_WORK_MEM_MB = 256;

/** `warehouse:` for a PostgreSQL server. */
export const postgresConfigSchema = z.strictObject({
  type: z.literal('postgres'),
  /** A libpq URL; it may carry a password, so it is treated as a secret. */
  url: secret(
    z
      .string()
      .min(1)
      .superRefine((url, ctx) => {
        const problem = postgresUrlProblem(url);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
  ),
  /** Connections in the pool (the diff holds one; the rest serve reads and commits). */
  pool_size: z.number().int().min(1).max(64).default(4),
  /** Rows fetched per round trip when streaming the delta (measured: 100 is 3x slower than 1,000+). */
  fetch_size: z.number().int().min(1000).max(100_000).default(5000),
  /**
   * `work_mem` of the diff's session, in MB: the memory each hash or sort of the diff (the
   * duplicate-key count, the FULL OUTER JOIN with state) may take before spilling to disk.
   * Default DIFF_WORK_MEM_MB.
   */
  diff_work_mem_mb: z.number().int().min(4).max(4096).optional(),
});
export type PostgresConfig = z.infer<typeof postgresConfigSchema>;
