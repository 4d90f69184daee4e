import pg from 'pg';

/**
 * A `pg.Client` that sends every text query with the extended query protocol (Parse, Bind,
 * Execute), never the simple one. node-postgres uses the simple protocol for a query without
 * parameters, and a simple Query message may hold several statements, which Postgres runs one
 * after the other; a Parse message holds exactly one ("cannot insert multiple commands into a
 * prepared statement", SQLSTATE 42601). So a model whose SQL closes Tailor's wrapping subquery and
 * adds `; drop table ...` is refused, not run. Kysely's Postgres driver passes parameterless
 * statements as `query(text, [])`, which alone would go simple; pg-cursor's portals are extended
 * already and pass through.
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-MULTI-STATEMENT
 * https://node-postgres.com/apis/client#queryconfig (`queryMode: 'extended'`)
 */
export class ExtendedProtocolClient extends pg.Client {
  // One implementation of pg.Client's overloads: text queries and query configs get the extended
  // protocol; a Submittable (a pg-cursor) is passed on as it is.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override query(config: unknown, values?: unknown, callback?: unknown): any {
    const query = super.query.bind(this) as (
      config: unknown,
      values?: unknown,
      callback?: unknown,
    ) => unknown;
    if (typeof config === 'string') return query({ text: config, queryMode: 'extended' }, values, callback);
    if (
      config !== null &&
      typeof config === 'object' &&
      typeof (config as { submit?: unknown }).submit !== 'function'
    )
      return query({ ...config, queryMode: 'extended' }, values, callback);
    return query(config, values, callback);
  }
}
