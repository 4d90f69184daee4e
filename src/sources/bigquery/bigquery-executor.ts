import { BigQuery, type Job } from '@google-cloud/bigquery';
import type { Logger } from 'pino';
import { AuthError, RetryableError, WarehouseError } from '../../errors.js';
import { redactValues } from '../redact.js';
import { bigqueryParams } from './bigquery-params.js';
import { decodeRows, type BigqueryField } from './bigquery-rows.js';

/** What one BigQuery job cost, from `statistics.query` of jobs.get. */
export interface BigqueryJobCost {
  jobId: string;
  bytesProcessed: number;
  bytesBilled: number;
  cacheHit: boolean;
}

/** Totals over a set of jobs, as stored in the run log (`RunRecord.cost`): snake_case, JSON-safe. */
export interface BigqueryCostSummary {
  warehouse: 'bigquery';
  jobs: number;
  bytes_processed: number;
  bytes_billed: number;
  job_ids: string[];
}

export interface BigqueryStatementOptions {
  /** Rows per jobs.getQueryResults page. */
  pageSize?: number;
  /** Runs the job inside this session (multi-statement transactions). */
  sessionId?: string;
  /** Starts a session with this job; its id is returned in `sessionId`. */
  createSession?: boolean;
}

/** The outcome of one statement: the first page of rows, and a way to read the rest. */
export interface BigqueryStatement {
  jobId: string;
  rows: Record<string, unknown>[];
  numAffectedRows: bigint | undefined;
  sessionId: string | undefined;
  /** Further pages of the result, `pageSize` rows at a time (empty once the first page was all). */
  pages(): AsyncIterable<Record<string, unknown>[]>;
}

interface QueryResultsResponse {
  jobComplete?: boolean;
  pageToken?: string | null;
  rows?: { f?: { v?: unknown }[] }[] | null;
  schema?: { fields?: BigqueryField[] | null } | null;
  numDmlAffectedRows?: string | null;
}

interface JobMetadata {
  status?: { errorResult?: { reason?: string; message?: string } | null };
  statistics?: {
    query?: {
      totalBytesProcessed?: string;
      totalBytesBilled?: string;
      cacheHit?: boolean;
      numDmlAffectedRows?: string | null;
    };
    sessionInfo?: { sessionId?: string };
  };
}

const DEFAULT_PAGE = 10_000;

/** What the Kysely driver needs from an executor (the SQL compile tests pass a recording one). */
export interface BigqueryRunner {
  run(
    sql: string,
    parameters: readonly unknown[],
    options?: BigqueryStatementOptions,
  ): Promise<BigqueryStatement>;
  all(
    sql: string,
    parameters?: readonly unknown[],
    options?: BigqueryStatementOptions,
  ): Promise<BigqueryStatement>;
}

/**
 * Runs GoogleSQL statements as query jobs over the SDK and keeps their cost. One statement is:
 * jobs.insert (POST /projects/{p}/jobs), jobs.getQueryResults (GET /projects/{p}/queries/{job})
 * until `jobComplete`, jobs.get (GET /projects/{p}/jobs/{job}) for `statistics.query`, then further
 * getQueryResults pages with `pageToken` when the caller reads them.
 * https://cloud.google.com/bigquery/docs/reference/rest/v2/jobs
 */
export class BigqueryExecutor implements BigqueryRunner {
  readonly #client: BigQuery;
  readonly #location: string;
  readonly #costs: BigqueryJobCost[] = [];

  readonly #logger: Logger | undefined;

  /** `logger` gets one debug line per job: its id, bytes and time, and the start of its SQL (never parameters). */
  constructor(client: BigQuery, location: string, logger?: Logger) {
    this.#client = client;
    this.#location = location;
    this.#logger = logger;
  }

  get client(): BigQuery {
    return this.#client;
  }

  /** Every job run so far, in order; pass `costs.length` as a mark to `summary` for a run's share. */
  get costs(): readonly BigqueryJobCost[] {
    return this.#costs;
  }

  summary(since = 0): BigqueryCostSummary {
    const jobs = this.#costs.slice(since);
    return {
      warehouse: 'bigquery',
      jobs: jobs.length,
      bytes_processed: jobs.reduce((sum, job) => sum + job.bytesProcessed, 0),
      bytes_billed: jobs.reduce((sum, job) => sum + job.bytesBilled, 0),
      job_ids: jobs.map((job) => job.jobId),
    };
  }

  async run(
    sql: string,
    parameters: readonly unknown[],
    options: BigqueryStatementOptions = {},
  ): Promise<BigqueryStatement> {
    const pageSize = options.pageSize ?? DEFAULT_PAGE;
    const started = Date.now();
    const request: Record<string, unknown> = {
      query: sql,
      location: this.#location,
      jobPrefix: 'tailor_',
    };
    if (parameters.length > 0) {
      // Built here rather than through the SDK's `params`/`types` options, which would also copy
      // `types` into the job configuration: the body is exactly the REST reference's
      // `parameterMode` + `queryParameters`. https://cloud.google.com/bigquery/docs/reference/rest/v2/QueryParameter
      const { params, types } = bigqueryParams(parameters);
      request.parameterMode = 'POSITIONAL';
      request.queryParameters = params.map((value, i) =>
        BigQuery.valueToQueryParameter_(value, types[i] as never),
      );
    }
    if (options.createSession) request.createSession = true;
    if (options.sessionId) request.connectionProperties = [{ key: 'session_id', value: options.sessionId }];

    let job: Job;
    try {
      [job] = await this.#client.createQueryJob(request);
    } catch (error) {
      throw toWarehouseError(error, 'BigQuery refused the query job');
    }
    const jobId = job.id ?? '';

    let first = await this.#results(jobId, { maxResults: pageSize });
    while (first.jobComplete === false) first = await this.#results(jobId, { maxResults: pageSize });

    let metadata: JobMetadata;
    try {
      [metadata] = (await job.getMetadata()) as unknown as [JobMetadata];
    } catch (error) {
      throw toWarehouseError(error, 'BigQuery job status could not be read');
    }
    const failure = metadata.status?.errorResult;
    if (failure) {
      throw toWarehouseError(
        Object.assign(new Error(failure.message ?? 'job failed'), { code: 400, errors: [failure] }),
        'BigQuery query failed',
      );
    }
    const stats = metadata.statistics?.query;
    const cost = {
      jobId,
      bytesProcessed: Number(stats?.totalBytesProcessed ?? 0),
      bytesBilled: Number(stats?.totalBytesBilled ?? 0),
      cacheHit: stats?.cacheHit ?? false,
    };
    this.#costs.push(cost);
    this.#logger?.debug(
      { jobId, ms: Date.now() - started, bytesProcessed: cost.bytesProcessed, bytesBilled: cost.bytesBilled },
      `bigquery job: ${sql.replace(/\s+/g, ' ').slice(0, 160)}`,
    );

    const fields = first.schema?.fields ?? [];
    const rows = decodeRows(fields, first.rows ?? []);
    let pageToken = first.pageToken ?? undefined;
    const results = this.#results.bind(this);
    return {
      jobId,
      rows,
      // getQueryResults carries the DML count; the job's statistics.query carries it too, and is
      // read when the results lack it (bqemulator 1.4.0's getQueryResults omits it).
      numAffectedRows: dmlCount(first.numDmlAffectedRows ?? stats?.numDmlAffectedRows),
      sessionId: metadata.statistics?.sessionInfo?.sessionId ?? options.sessionId,
      async *pages() {
        while (pageToken) {
          const page = await results(jobId, { maxResults: pageSize, pageToken });
          pageToken = page.pageToken ?? undefined;
          yield decodeRows(page.schema?.fields ?? fields, page.rows ?? []);
        }
      },
    };
  }

  /**
   * Validates a query and returns its result schema without running it: a dry-run job, which BigQuery
   * neither bills nor keeps. https://cloud.google.com/bigquery/docs/running-queries#dry-run
   */
  async dryRun(
    sql: string,
  ): Promise<{ fields: BigqueryField[]; bytesProcessed: number; statementType: string | undefined }> {
    let metadata: JobMetadata & {
      statistics?: { query?: { schema?: { fields?: BigqueryField[] }; statementType?: string } };
    };
    try {
      const [, response] = await this.#client.createQueryJob({
        query: sql,
        location: this.#location,
        dryRun: true,
      });
      metadata = (response ?? {}) as typeof metadata;
    } catch (error) {
      throw toWarehouseError(error, 'BigQuery rejected the query');
    }
    return {
      fields: metadata.statistics?.query?.schema?.fields ?? [],
      bytesProcessed: Number(metadata.statistics?.query?.totalBytesProcessed ?? 0),
      statementType: metadata.statistics?.query?.statementType,
    };
  }

  /** Runs a statement and reads every page (for small results). */
  async all(
    sql: string,
    parameters: readonly unknown[] = [],
    options?: BigqueryStatementOptions,
  ): Promise<BigqueryStatement> {
    const statement = await this.run(sql, parameters, options);
    const rows = [...statement.rows];
    for await (const page of statement.pages()) rows.push(...page);
    return { ...statement, rows };
  }

  /** jobs.getQueryResults, called through the SDK's authenticated request so the query string is ours. */
  #results(jobId: string, query: { maxResults: number; pageToken?: string }): Promise<QueryResultsResponse> {
    const qs: Record<string, unknown> = {
      location: this.#location,
      maxResults: query.maxResults,
      'formatOptions.useInt64Timestamp': true,
    };
    if (query.pageToken) qs.pageToken = query.pageToken;
    return new Promise((resolve, reject) => {
      this.#client.request({ uri: `/queries/${encodeURIComponent(jobId)}`, qs }, (error, response) => {
        if (error) reject(toWarehouseError(error, 'BigQuery query failed'));
        else resolve((response ?? {}) as QueryResultsResponse);
      });
    });
  }
}

const dmlCount = (value: string | null | undefined) =>
  value === undefined || value === null ? undefined : BigInt(value);

interface ApiErrorLike {
  code?: number | string;
  message?: string;
  errors?: { reason?: string; message?: string }[];
}

const RETRYABLE_REASONS = new Set(['backendError', 'rateLimitExceeded', 'internalError', 'jobBackendError']);

/**
 * BigQuery's message with data values taken out (src/sources/redact.ts): runtime errors quote the
 * offending value (`Invalid timestamp: '...'`, `Could not cast literal "..."`) or put it after
 * `value:` (`Bad int64 value: jane@example.com`), and it may be an identifier of a person; the
 * message is cut at the first quote, line break or `value:` and the rest replaced, whatever the
 * value holds. Backtick-quoted names and `Unrecognized name: emial at [1:8]` are the SQL's own and
 * kept. Not covered: the text of `ERROR(...)`, which a model may call with a value as its message.
 */
const BIGQUERY_VALUE_START = new RegExp(
  `["'\\n\\r\u2018\u2019\u201c\u201d\u00ab\u00bb]|(?<=\\bvalue:?\\s)`,
  'i',
);

export function redactBigqueryMessage(message: string): string {
  return redactValues(message, BIGQUERY_VALUE_START);
}

/**
 * Maps SDK errors to the taxonomy. The SDK's error holds the HTTP request (with its parameters) and
 * response; only a redacted message, the HTTP code and the error reasons are kept as the cause, so
 * nothing a log serializer walks can reveal a parameter or a value.
 * https://cloud.google.com/bigquery/docs/error-messages
 */
export function toWarehouseError(error: unknown, context: string): Error {
  if (error instanceof WarehouseError || error instanceof AuthError || error instanceof RetryableError)
    return error;
  const api = (error ?? {}) as ApiErrorLike;
  const reason = api.errors?.[0]?.reason;
  const detail = redactBigqueryMessage(api.errors?.[0]?.message ?? api.message ?? String(error));
  const message = `${context}: ${detail}`;
  const code = Number(api.code);
  const cause = Object.assign(new Error(detail), {
    code: Number.isFinite(code) ? code : undefined,
    errors: (api.errors ?? []).map((e) => ({
      reason: e.reason,
      message: e.message === undefined ? undefined : redactBigqueryMessage(e.message),
    })),
  });
  if (code === 401) {
    return new AuthError(message, {
      cause,
      hint: 'check warehouse.key_file / key_json or the application default credentials',
    });
  }
  if (code === 403 && reason !== 'rateLimitExceeded' && reason !== 'quotaExceeded') {
    return new WarehouseError(message, { cause, hint: 'grant the roles listed in docs/warehouses.md' });
  }
  if (code === 429 || code >= 500 || (reason !== undefined && RETRYABLE_REASONS.has(reason))) {
    return new RetryableError(message, { cause });
  }
  return new WarehouseError(message, { cause });
}
