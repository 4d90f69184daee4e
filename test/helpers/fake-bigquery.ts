import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/**
 * A local stand-in for the BigQuery v2 REST API as @google-cloud/bigquery calls it: jobs.insert
 * (`POST /bigquery/v2/projects/{p}/jobs`), jobs.query (`POST .../queries`), jobs.getQueryResults
 * (`GET .../queries/{jobId}`, paged by `maxResults`/`pageToken`), jobs.get (`GET .../jobs/{jobId}`)
 * and tabledata.list. It does not run SQL: it records every job with its typed parameters and
 * answers scripted results matched on the query text.
 * https://cloud.google.com/bigquery/docs/reference/rest/v2/jobs
 */

export interface FakeBigqueryRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
  authorization: string | undefined;
}

export interface FakeBigqueryField {
  name: string;
  type: string;
  mode?: 'NULLABLE' | 'REQUIRED' | 'REPEATED';
  fields?: FakeBigqueryField[];
}

export interface FakeBigqueryJob {
  jobId: string;
  sql: string;
  /** `queryParameters` as sent: `{ parameterType, parameterValue }`. */
  parameters: { parameterType: unknown; parameterValue: unknown }[];
  configuration: Record<string, unknown>;
  dryRun: boolean;
}

export interface FakeBigqueryResult {
  fields?: FakeBigqueryField[];
  /** Rows as JS values in `fields` order; encoded into REST cells (`{ f: [{ v }] }`) by the fake. */
  rows?: unknown[][];
  /** numDmlAffectedRows for DML. */
  affected?: number;
  /** statistics.query.totalBytesProcessed / totalBytesBilled. */
  bytes?: number;
  /** Answer jobs.getQueryResults with `jobComplete: false` this many times first. */
  pendingPolls?: number;
  error?: { code: number; reason: string; message: string };
}

type Responder = FakeBigqueryResult | ((job: FakeBigqueryJob) => FakeBigqueryResult);

interface StoredJob extends FakeBigqueryJob {
  result: FakeBigqueryResult;
  /** The session a `createSession` job started (one per job, however often the job is read). */
  sessionId?: string;
  polls: number;
  location: string;
  projectId: string;
}

export class FakeBigquery {
  readonly requests: FakeBigqueryRequest[] = [];
  readonly jobs: FakeBigqueryJob[] = [];
  readonly #server: Server;
  readonly #rules: { match: (sql: string) => boolean; respond: Responder }[] = [];
  readonly #stored = new Map<string, StoredJob>();
  #sessions = 0;

  private constructor() {
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  static async start(): Promise<FakeBigquery> {
    const fake = new FakeBigquery();
    await new Promise<void>((resolve) => fake.#server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  get url(): string {
    const { port } = this.#server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  /** Answers jobs whose SQL matches; later rules win. */
  on(match: RegExp | ((sql: string) => boolean), respond: Responder): this {
    this.#rules.unshift({ match: typeof match === 'function' ? match : (sql) => match.test(sql), respond });
    return this;
  }

  /** The endpoints called, in order, as `METHOD path`. */
  calls(): string[] {
    return this.requests.map((r) => `${r.method} ${r.path}`);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let raw = Buffer.concat(chunks);
    if (req.headers['content-encoding'] === 'gzip' && raw.length > 0) raw = gunzipSync(raw);
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const body = raw.length > 0 ? (JSON.parse(raw.toString('utf8')) as Record<string, unknown>) : undefined;
    const request: FakeBigqueryRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      body,
      authorization: req.headers.authorization,
    };
    this.requests.push(request);
    const send = (status: number, payload: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(payload));
    };
    const m = /^\/bigquery\/v2\/projects\/([^/]+)\/(jobs|queries)(?:\/([^/]+))?$/.exec(request.path);
    if (!m) {
      send(404, {
        error: { code: 404, message: `fake bigquery: no route ${request.method} ${request.path}` },
      });
      return;
    }
    const [, projectId = '', collection, id] = m;
    if (request.authorization !== 'Bearer fake-token') {
      send(401, {
        error: {
          code: 401,
          message: 'Request had invalid authentication credentials.',
          errors: [{ reason: 'authError', message: 'invalid credentials' }],
        },
      });
      return;
    }
    if (request.method === 'POST' && collection === 'jobs' && !id) {
      const jobBody = (body ?? {}) as {
        configuration?: { query?: Record<string, unknown>; dryRun?: boolean };
        jobReference?: { jobId?: string; location?: string };
      };
      const job = this.#create(
        projectId,
        jobBody.jobReference?.jobId ?? `job_${this.jobs.length + 1}`,
        jobBody.jobReference?.location ?? 'US',
        jobBody.configuration ?? {},
      );
      if (job.result.error && job.dryRun) {
        send(job.result.error.code, apiError(job.result.error));
        return;
      }
      send(200, this.#jobResource(job, job.dryRun ? 'DONE' : 'RUNNING'));
      return;
    }
    if (request.method === 'POST' && collection === 'queries' && !id) {
      const q = (body ?? {}) as Record<string, unknown>;
      const job = this.#create(projectId, `job_q${this.jobs.length + 1}`, String(q.location ?? 'US'), {
        query: q,
      });
      send(200, {
        ...this.#results(job, Number(q.maxResults ?? 0), undefined),
        kind: 'bigquery#queryResponse',
      });
      return;
    }
    const job = id ? this.#stored.get(id) : undefined;
    if (!job) {
      send(404, {
        error: { code: 404, message: `Not found: Job ${projectId}:${id}`, errors: [{ reason: 'notFound' }] },
      });
      return;
    }
    if (request.method === 'GET' && collection === 'queries') {
      if (job.result.error) {
        send(job.result.error.code, apiError(job.result.error));
        return;
      }
      if (job.polls < (job.result.pendingPolls ?? 0)) {
        job.polls += 1;
        send(200, {
          kind: 'bigquery#getQueryResultsResponse',
          jobReference: this.#ref(job),
          jobComplete: false,
        });
        return;
      }
      send(200, this.#results(job, Number(request.query.maxResults ?? 0), request.query.pageToken));
      return;
    }
    if (request.method === 'GET' && collection === 'jobs') {
      send(200, this.#jobResource(job, 'DONE'));
      return;
    }
    send(404, { error: { code: 404, message: 'fake bigquery: unsupported call' } });
  }

  #create(
    projectId: string,
    jobId: string,
    location: string,
    configuration: Record<string, unknown>,
  ): StoredJob {
    const query = (configuration.query ?? {}) as Record<string, unknown>;
    const sql = String(query.query ?? '');
    const recorded: FakeBigqueryJob = {
      jobId,
      sql,
      parameters: (query.queryParameters ?? []) as FakeBigqueryJob['parameters'],
      configuration,
      dryRun: configuration.dryRun === true,
    };
    this.jobs.push(recorded);
    const rule = this.#rules.find((r) => r.match(sql));
    const result = rule ? (typeof rule.respond === 'function' ? rule.respond(recorded) : rule.respond) : {};
    const stored: StoredJob = { ...recorded, result, polls: 0, location, projectId };
    this.#stored.set(jobId, stored);
    return stored;
  }

  #ref(job: StoredJob) {
    return { projectId: job.projectId, jobId: job.jobId, location: job.location };
  }

  #jobResource(job: StoredJob, state: 'RUNNING' | 'DONE') {
    const query = (job.configuration.query ?? {}) as Record<string, unknown>;
    const bytes = String(job.result.bytes ?? 0);
    const statistics: Record<string, unknown> = {
      creationTime: String(Date.now()),
      query: {
        totalBytesProcessed: bytes,
        totalBytesBilled: job.dryRun ? '0' : bytes,
        cacheHit: false,
        statementType: statementType(job.sql),
        ...(job.result.affected === undefined ? {} : { numDmlAffectedRows: String(job.result.affected) }),
        ...(job.dryRun ? { schema: { fields: job.result.fields ?? [] } } : {}),
      },
      totalBytesProcessed: bytes,
    };
    if (query.createSession === true) {
      job.sessionId ??= `fake-session-${++this.#sessions}`;
      statistics.sessionInfo = { sessionId: job.sessionId };
    } else if (Array.isArray(query.connectionProperties)) {
      const session = (query.connectionProperties as { key: string; value: string }[]).find(
        (p) => p.key === 'session_id',
      );
      if (session) statistics.sessionInfo = { sessionId: session.value };
    }
    return {
      kind: 'bigquery#job',
      id: `${job.projectId}:${job.location}.${job.jobId}`,
      jobReference: this.#ref(job),
      configuration: job.configuration,
      status:
        job.result.error && state === 'DONE'
          ? { state, errorResult: apiError(job.result.error).error.errors[0] }
          : { state },
      statistics,
    };
  }

  #results(job: StoredJob, maxResults: number, pageToken: string | undefined) {
    const rows = job.result.rows ?? [];
    const fields = job.result.fields ?? [];
    const start = pageToken ? Number(pageToken) : 0;
    const end = maxResults > 0 ? Math.min(rows.length, start + maxResults) : rows.length;
    return {
      kind: 'bigquery#getQueryResultsResponse',
      jobReference: this.#ref(job),
      jobComplete: true,
      schema: { fields },
      rows: rows.slice(start, end).map((row) => encodeRow(fields, row)),
      totalRows: String(rows.length),
      ...(end < rows.length ? { pageToken: String(end) } : {}),
      totalBytesProcessed: String(job.result.bytes ?? 0),
      cacheHit: false,
      ...(job.result.affected === undefined ? {} : { numDmlAffectedRows: String(job.result.affected) }),
    };
  }
}

function apiError(error: { code: number; reason: string; message: string }) {
  return {
    error: {
      code: error.code,
      message: error.message,
      errors: [{ reason: error.reason, message: error.message }],
    },
  };
}

function encodeRow(fields: readonly FakeBigqueryField[], row: readonly unknown[]): { f: { v: unknown }[] } {
  return { f: fields.map((field, i) => ({ v: encodeValue(field, row[i]) })) };
}

function encodeValue(field: FakeBigqueryField, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (field.mode === 'REPEATED') {
    return (value as unknown[]).map((item) => ({ v: encodeScalar(field, item) }));
  }
  return encodeScalar(field, value);
}

function encodeScalar(field: FakeBigqueryField, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (field.type === 'RECORD' || field.type === 'STRUCT') {
    const record = value as Record<string, unknown>;
    return { f: (field.fields ?? []).map((sub) => ({ v: encodeValue(sub, record[sub.name]) })) };
  }
  if (field.type === 'TIMESTAMP' && value instanceof Date) return String(BigInt(value.getTime()) * 1000n);
  return String(value);
}

/**
 * BigQuery's `statistics.query.statementType` as far as the fake can tell: `SCRIPT` for several
 * statements, `CREATE_TABLE_AS_SELECT` for a CREATE TABLE ... AS, else the first word.
 * https://cloud.google.com/bigquery/docs/reference/rest/v2/Job#JobStatistics2
 */
function statementType(sql: string): string {
  if (sql.replace(/;\s*$/, '').includes(';')) return 'SCRIPT';
  if (/^\s*CREATE\s+(OR\s+REPLACE\s+)?TABLE\b[\s\S]*\bAS\s+(SELECT|WITH|\()/i.test(sql))
    return 'CREATE_TABLE_AS_SELECT';
  return /^\s*(\w+)/.exec(sql)?.[1]?.toUpperCase() ?? 'SELECT';
}
