/**
 * Decodes the REST `rows` (`{ f: [{ v }] }`) with their `schema` into plain objects. Done here rather
 * than by the SDK so values come out as Tailor expects them everywhere: INT64 as a number when safe
 * and as decimal text otherwise (the SDK throws beyond 2^53), TIMESTAMP as a Date, JSON as text.
 * https://cloud.google.com/bigquery/docs/reference/rest/v2/tabledata/list
 */
export interface BigqueryField {
  name?: string | null;
  type?: string | null;
  mode?: string | null;
  fields?: BigqueryField[] | null;
}

interface Cell {
  v?: unknown;
}

export function decodeRows(
  fields: readonly BigqueryField[],
  rows: readonly { f?: Cell[] | null }[],
): Record<string, unknown>[] {
  return rows.map((row) => decodeRecord(fields, row));
}

function decodeRecord(fields: readonly BigqueryField[], row: { f?: Cell[] | null }): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const cells = row.f ?? [];
  fields.forEach((field, index) => {
    out[field.name ?? `f${index}`] = decodeField(field, cells[index]?.v);
  });
  return out;
}

function decodeField(field: BigqueryField, raw: unknown): unknown {
  if (raw === null || raw === undefined) return field.mode === 'REPEATED' ? [] : null;
  if (field.mode === 'REPEATED') {
    return (raw as Cell[]).map((cell) => decodeScalar(field, cell.v));
  }
  return decodeScalar(field, raw);
}

function decodeScalar(field: BigqueryField, raw: unknown): unknown {
  if (raw === null || raw === undefined) return null;
  switch ((field.type ?? 'STRING').toUpperCase()) {
    case 'INTEGER':
    case 'INT64': {
      const text = String(raw);
      const n = Number(text);
      return Number.isSafeInteger(n) ? n : text;
    }
    case 'FLOAT':
    case 'FLOAT64':
      return Number(raw);
    case 'BOOLEAN':
    case 'BOOL':
      return raw === true || raw === 'true';
    case 'TIMESTAMP': {
      // With formatOptions.useInt64Timestamp (the SDK's default) timestamps are microseconds since
      // the epoch; older responses carry seconds as a float.
      const text = String(raw);
      if (/^-?\d+$/.test(text)) return new Date(Number(BigInt(text) / 1000n));
      return new Date(Number(text) * 1000);
    }
    case 'RECORD':
    case 'STRUCT':
      return decodeRecord(field.fields ?? [], raw as { f?: Cell[] });
    default:
      return String(raw);
  }
}
