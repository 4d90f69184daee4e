import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Socket, type AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/**
 * A local stand-in for Snowflake's REST endpoints as snowflake-sdk uses them: login
 * (`POST /session/v1/login-request`), statements (`POST /queries/v1/query-request`), results
 * (`GET /queries/{id}/result`), telemetry (`POST /telemetry/send`) and logout
 * (`POST /session?delete=true`). It does not run SQL: it records each statement with its binds and
 * answers scripted results matched on the statement text, so tests can assert exactly what a real
 * session would be sent. Bound to 127.0.0.1 only.
 */

export interface FakeSnowflakeRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
}

export interface FakeSnowflakeStatement {
  sql: string;
  /** Binds as the SDK sent them: `{ "1": { type, value } }`, in order. */
  binds: { type: string; value: unknown }[];
  queryId: string;
  /** Statement parameters as the SDK sent them (`MULTI_STATEMENT_COUNT`, ...). */
  parameters: Record<string, unknown> | undefined;
}

export type FakeColumnType = 'text' | 'fixed' | 'real' | 'boolean' | 'variant' | 'array';

export interface FakeSnowflakeResult {
  columns?: { name: string; type: FakeColumnType }[];
  /** Cells as Snowflake's JSON result format sends them (strings, or null). */
  rows?: (string | null)[][];
  /** Rows affected, for INSERT/UPDATE/DELETE/MERGE. */
  affected?: number;
  /** An error answered instead of a result. */
  error?: { code: string; message: string; sqlState?: string };
}

type Responder = FakeSnowflakeResult | ((statement: FakeSnowflakeStatement) => FakeSnowflakeResult);

export class FakeSnowflake {
  readonly requests: FakeSnowflakeRequest[] = [];
  readonly statements: FakeSnowflakeStatement[] = [];
  readonly #server: Server;
  readonly #rules: { match: (sql: string) => boolean; respond: Responder }[] = [];
  #next = 0;
  /** The login request's decoded body `data`, for credential assertions. */
  login: Record<string, unknown> | undefined;
  /** The account's MULTI_STATEMENT_COUNT, for statements that do not set it (0: any number). */
  multiStatementCount = 0;
  /** Requests that ran as several statements. */
  readonly multiStatements: string[] = [];
  /** When set, logins are refused with this Snowflake error (e.g. 390100, wrong credentials). */
  loginError: { code: string; message: string } | undefined;

  private constructor() {
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  static async start(): Promise<FakeSnowflake> {
    const fake = new FakeSnowflake();
    await new Promise<void>((resolve) => fake.#server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  get url(): string {
    const { port } = this.#server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  /** Answers statements matching `match` (a regex on the SQL text, or a predicate); later rules win. */
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
    const request = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      body,
    };
    this.requests.push(request);
    const send = (status: number, payload: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(payload));
    };

    if (request.path === '/session/v1/login-request') {
      this.login = (body?.data ?? {}) as Record<string, unknown>;
      if (this.loginError) {
        send(200, {
          data: { nextAction: null },
          code: this.loginError.code,
          message: this.loginError.message,
          success: false,
        });
        return;
      }
      send(200, {
        data: {
          token: 'fake-session-token',
          masterToken: 'fake-master-token',
          validityInSeconds: 3600,
          masterValidityInSeconds: 14400,
          sessionId: 1234567890,
          parameters: [{ name: 'CLIENT_SESSION_KEEP_ALIVE', value: false }],
          sessionInfo: {
            databaseName: request.query.databaseName ?? null,
            schemaName: request.query.schemaName ?? null,
            warehouseName: request.query.warehouse ?? null,
            roleName: request.query.roleName ?? null,
          },
        },
        code: null,
        message: null,
        success: true,
      });
      return;
    }
    if (request.path === '/queries/v1/query-request') {
      const sqlText = String(body?.sqlText ?? '');
      const bindings = (body?.bindings ?? {}) as Record<string, { type: string; value: unknown }>;
      const binds = Object.keys(bindings)
        .sort((a, b) => Number(a) - Number(b))
        .map((k) => bindings[k]!);
      this.#next += 1;
      const queryId = `01fake00-0000-0000-0000-${String(this.#next).padStart(12, '0')}`;
      const parameters = body?.parameters as Record<string, unknown> | undefined;
      const statement = { sql: sqlText, binds, queryId, parameters };
      this.statements.push(statement);
      // Snowflake refuses a request of several statements unless MULTI_STATEMENT_COUNT allows them;
      // the fake's account allows any number (0) by default. Statements are counted by `;` only.
      const count = Number(parameters?.MULTI_STATEMENT_COUNT ?? this.multiStatementCount);
      const actual = sqlText.replace(/;\s*$/, '').split(';').length;
      if (count !== 0 && actual !== count) {
        send(200, {
          data: { queryId, sqlState: '0A000', errorCode: '000008' },
          code: '000008',
          message: `Actual statement count ${actual} did not match the desired statement count ${count}.`,
          success: false,
        });
        return;
      }
      if (actual > 1) this.multiStatements.push(sqlText);
      const rule = this.#rules.find((r) => r.match(sqlText));
      const result = rule
        ? typeof rule.respond === 'function'
          ? rule.respond(statement)
          : rule.respond
        : {};
      if (result.error) {
        send(200, {
          data: { queryId, sqlState: result.error.sqlState ?? '42000', errorCode: result.error.code },
          code: result.error.code,
          message: result.error.message,
          success: false,
        });
        return;
      }
      send(200, {
        data: resultData(sqlText, queryId, result, request.query),
        code: null,
        message: null,
        success: true,
      });
      return;
    }
    if (request.path === '/telemetry/send') {
      send(200, { success: true, data: 'Log Received', code: null, message: null });
      return;
    }
    if (request.path === '/session' && request.query.delete === 'true') {
      send(200, { success: true, data: null, code: null, message: null });
      return;
    }
    if (request.path === '/session/heartbeat') {
      send(200, { success: true, data: null, code: null, message: null });
      return;
    }
    send(404, {
      success: false,
      code: '404',
      message: `fake snowflake: no route ${request.method} ${request.path}`,
    });
  }
}

const STATEMENT_TYPES: Record<string, number> = {
  SELECT: 0x1000,
  WITH: 0x1000,
  INSERT: 0x3100,
  UPDATE: 0x3200,
  DELETE: 0x3300,
  MERGE: 0x3400,
  BEGIN: 0x5000,
  COMMIT: 0x5000,
  ROLLBACK: 0x5000,
};

const DML_COLUMNS: Record<number, string[]> = {
  0x3100: ['number of rows inserted'],
  0x3200: ['number of rows updated', 'number of multi-joined rows updated'],
  0x3300: ['number of rows deleted'],
  0x3400: ['number of rows inserted', 'number of rows updated', 'number of rows deleted'],
};

function resultData(
  sql: string,
  queryId: string,
  result: FakeSnowflakeResult,
  _query: Record<string, string>,
) {
  const verb = /^\s*(\w+)/.exec(sql)?.[1]?.toUpperCase() ?? 'SELECT';
  const statementTypeId = STATEMENT_TYPES[verb] ?? 0x6000;
  let columns = result.columns;
  let rows = result.rows;
  const dml = DML_COLUMNS[statementTypeId];
  if (dml && !columns) {
    columns = dml.map((name) => ({ name, type: 'fixed' as const }));
    rows = [dml.map((_, i) => String(i === 0 ? (result.affected ?? 0) : 0))];
  }
  if (!columns) {
    columns = statementTypeId === 0x1000 ? [] : [{ name: 'status', type: 'text' as const }];
    rows = statementTypeId === 0x1000 ? [] : [['Statement executed successfully.']];
  }
  rows ??= [];
  return {
    parameters: [{ name: 'TIMEZONE', value: 'UTC' }],
    rowtype: columns.map((column) => ({
      name: column.name,
      database: '',
      schema: '',
      table: '',
      type: column.type,
      nullable: true,
      scale: column.type === 'fixed' ? 0 : null,
      precision: column.type === 'fixed' ? 38 : null,
      length: column.type === 'text' ? 16777216 : null,
      byteLength: column.type === 'text' ? 16777216 : null,
      collation: null,
    })),
    rowset: rows,
    total: rows.length,
    returned: rows.length,
    queryId,
    databaseProvider: null,
    finalDatabaseName: 'TAILOR_DB',
    finalSchemaName: 'PUBLIC',
    finalWarehouseName: 'TAILOR_WH',
    finalRoleName: 'TAILOR_ROLE',
    numberOfBinds: 0,
    arrayBindSupported: false,
    statementTypeId,
    version: 1,
    sendResultTime: Date.now(),
    queryResultFormat: 'json',
  };
}

/**
 * Records the host of every TCP connection the process opens until `stop()`: tests assert that the
 * SDKs under test reached nothing but the local fakes.
 */
export function watchConnections(): { hosts: string[]; stop(): void } {
  const hosts: string[] = [];
  const prototype = Socket.prototype as unknown as { connect: (...args: unknown[]) => unknown };
  const original = prototype.connect;
  prototype.connect = function (this: Socket, ...args: unknown[]) {
    // net.connect() hands the socket its normalized arguments as one array: [options, callback].
    const [first, second] = Array.isArray(args[0]) ? (args[0] as unknown[]) : args;
    if (first && typeof first === 'object') {
      const options = first as { host?: string; path?: string };
      hosts.push(options.path ? `unix:${options.path}` : (options.host ?? 'localhost'));
    } else if (typeof first === 'number' || typeof first === 'string') {
      hosts.push(typeof second === 'string' ? second : 'localhost');
    }
    return original.apply(this, args);
  };
  return {
    hosts,
    stop() {
      prototype.connect = original;
    },
  };
}
