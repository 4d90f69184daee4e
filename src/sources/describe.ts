import { wrapModelSql } from './model-sql.js';
import type { ColumnInfo } from './source.js';

/**
 * Reads a Postgres row description into ColumnInfo, naming each type through pg_type (Postgres and
 * PGlite report type oids only).
 */
export async function describePgFields(
  fields: readonly { name: string; dataTypeID: number }[],
  typeNames: (oids: number[]) => Promise<Map<number, string>>,
): Promise<ColumnInfo[]> {
  const names = await typeNames([...new Set(fields.map((f) => f.dataTypeID))]);
  return fields.map((f) => ({ name: f.name, type: names.get(f.dataTypeID) ?? `oid ${f.dataTypeID}` }));
}

/** `select * from (<sql>) as m limit 0`: the model's columns without reading a row. */
export function describeQuery(modelSql: string): string {
  return `select * from ${wrapModelSql(modelSql)} as m limit 0`;
}

export const TYPE_NAMES_QUERY =
  'select oid::int as oid, format_type(oid, null) as name from pg_type where oid = any($1)';
