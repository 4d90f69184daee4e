import { parseArgs } from 'node:util';

/** What one `npm run bench` invocation measures. */
export interface BenchOptions {
  /** Segment sizes, smallest first. */
  sizes: number[];
  /** Measured repetitions of each case (medians are reported). */
  runs: number;
  /**
   * Repetitions of the initial load at sizes of 1M and more, and at every size with --quick (each one
   * reloads the whole segment).
   * The incremental case still gets `runs` repetitions there, alternating the edits forward and back.
   */
  largeInitialRuns: number;
  /** The full pull runs at sizes up to this many rows (it reads the whole segment every run). */
  fullPullMaxRows: number;
  out: string;
  skipPglite: boolean;
  skipFullPull: boolean;
  /** The PGlite incremental case runs at this size (1M, or the largest size when that is smaller). */
  pgliteRows: number;
  /**
   * Size of the BigQuery case on the local engine (bqemulator on DuckDB), run after PGlite and reported
   * without a target; 0 leaves it out (as --skip-bigquery does).
   */
  bigqueryRows: number;
  /** A server URL; the benchmark creates (and drops first) `database` on it. */
  pgUrl: string;
  database: string;
  /** Keep the benchmark database and temp projects afterwards (for inspection). */
  keep: boolean;
  quick: boolean;
  /**
   * Start no new repetition or case after this many minutes (the one under way finishes, then the
   * report is written with what was measured). Null: no limit.
   */
  maxMinutes: number | null;
  /** The Tailor version measured, for the report (default: `git describe` of the repository). */
  commit: string | null;
  /** Run the PGlite case before the largest PostgreSQL size instead of after every size. */
  pgliteBeforeLargest: boolean;
  /** Stop the case under way after this many minutes, keep its figures so far, write the report. */
  stopAfterMinutes: number | null;
  /** Write V8 CPU profiles of every `tailor sync` process into this directory (`node --cpu-prof`). */
  cpuProfDir: string | null;
}

export const USAGE = `usage: npm run bench -- [options]

  --quick               100k rows on PostgreSQL: the incremental case 3 times, the initial load once,
                        no PGlite unless --pglite-rows is given (under 2 minutes)
  --rows N[,N...]       segment sizes (default 1000000,5000000; suffixes k and m accepted)
  --runs N              measured repetitions per case, medians reported (default 3)
  --large-initial-runs N  initial-load repetitions at sizes of 1M and more, and with --quick
                        (default: --runs; 1 with --quick)
  --full-pull-max-rows N  run the full-pull baseline only up to this size (default: every size)
  --out FILE            where to write the results (default bench/RESULTS.md)
  --skip-pglite         leave out the PGlite incremental case
  --skip-full-pull      leave out the full-pull baseline
  --bigquery-rows N     size of the BigQuery case on bqemulator (DuckDB), reported only (default 100k;
                        0 leaves it out)
  --skip-bigquery       leave out the BigQuery case
  --pg-url URL          PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres)
  --database NAME       database to (re)create for the run (default tailor_bench)
  --keep                keep the database and the generated projects (with each sync's log)
  --pglite-rows N       size of the PGlite case (default: 1M, or the largest size when smaller)
  --max-minutes N       start no new repetition or case after N minutes; report what was measured
  --stop-after-minutes N  stop the case under way after N minutes (its figures so far are kept)
  --commit TEXT         the Tailor commit measured, for the report (default: git, when in a repository)
  --pglite-before-largest run the PGlite case before the largest PostgreSQL size (when time is short)
  --cpu-prof DIR        write a V8 CPU profile of every tailor sync process into DIR
`;

/** Parses `12`, `100k`, `1m`, `1_000_000`. */
export function parseCount(text: string): number {
  const match = /^(\d[\d_]*)([km]?)$/i.exec(text.trim());
  if (!match) throw new Error(`not a row count: ${JSON.stringify(text)}`);
  const base = Number(match[1]!.replaceAll('_', ''));
  const scale = { '': 1, k: 1_000, m: 1_000_000 }[match[2]!.toLowerCase() as '' | 'k' | 'm'];
  const value = base * scale;
  if (!Number.isSafeInteger(value) || value < 100) throw new Error(`row count must be at least 100: ${text}`);
  return value;
}

export function parseBenchArgs(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      rows: { type: 'string' },
      runs: { type: 'string' },
      'large-initial-runs': { type: 'string' },
      'full-pull-max-rows': { type: 'string' },
      out: { type: 'string', default: 'bench/RESULTS.md' },
      'skip-pglite': { type: 'boolean', default: false },
      'skip-full-pull': { type: 'boolean', default: false },
      'pg-url': { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
      database: { type: 'string', default: 'tailor_bench' },
      keep: { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      'pglite-rows': { type: 'string' },
      'bigquery-rows': { type: 'string' },
      'skip-bigquery': { type: 'boolean', default: false },
      'max-minutes': { type: 'string' },
      'stop-after-minutes': { type: 'string' },
      'pglite-before-largest': { type: 'boolean', default: false },
      commit: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const sizes = (values.rows ?? (values.quick ? '100000' : '1000000,5000000'))
    .split(',')
    .filter((part) => part.trim() !== '')
    .map(parseCount)
    .sort((a, b) => a - b);
  if (sizes.length === 0) throw new Error('--rows needs at least one size');
  const runs = values.runs === undefined ? 3 : Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer`);
  const largeInitialRuns =
    values['large-initial-runs'] === undefined
      ? values.quick
        ? 1
        : runs
      : Number(values['large-initial-runs']);
  if (!Number.isInteger(largeInitialRuns) || largeInitialRuns < 1 || largeInitialRuns > runs) {
    throw new Error(`--large-initial-runs must be between 1 and --runs`);
  }
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(values.database)) {
    throw new Error('--database must be a plain lowercase identifier');
  }
  return {
    sizes,
    runs,
    largeInitialRuns,
    fullPullMaxRows:
      values['full-pull-max-rows'] === undefined
        ? Number.POSITIVE_INFINITY
        : parseCount(values['full-pull-max-rows']),
    out: values.out,
    // --quick leaves PGlite out (its initial load alone takes 20 s at 100k), unless a size is asked for.
    skipPglite: values['skip-pglite'] || (values.quick && values['pglite-rows'] === undefined),
    skipFullPull: values['skip-full-pull'],
    pgliteRows:
      values['pglite-rows'] === undefined
        ? Math.min(1_000_000, sizes[sizes.length - 1]!)
        : parseCount(values['pglite-rows']),
    bigqueryRows:
      // --quick leaves it out as it does PGlite, unless a size is asked for.
      values['skip-bigquery'] ||
      values['bigquery-rows'] === '0' ||
      (values.quick && values['bigquery-rows'] === undefined)
        ? 0
        : values['bigquery-rows'] === undefined
          ? 100_000
          : parseCount(values['bigquery-rows']),
    pgUrl: values['pg-url'],
    database: values.database,
    keep: values.keep,
    quick: values.quick,
    cpuProfDir: values['cpu-prof'] ?? null,
    maxMinutes: values['max-minutes'] === undefined ? null : Number(values['max-minutes']),
    pgliteBeforeLargest: values['pglite-before-largest'],
    commit: values.commit ?? null,
    stopAfterMinutes:
      values['stop-after-minutes'] === undefined ? null : Number(values['stop-after-minutes']),
  };
}
