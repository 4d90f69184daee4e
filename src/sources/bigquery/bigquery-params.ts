import { WarehouseError } from '../../errors.js';

/**
 * A GoogleSQL parameter type as the @google-cloud/bigquery `types` option spells it: a scalar name
 * (`STRING`, `INT64`, `TIMESTAMP`, `JSON`, ...), `[elementType]` for an ARRAY, `{ field: type }` for a
 * STRUCT. https://cloud.google.com/bigquery/docs/parameterized-queries
 */
export type BigqueryType = string | BigqueryType[] | { [field: string]: BigqueryType };

/** A parameter whose GoogleSQL type is stated rather than inferred (nulls, empty arrays, JSON). */
export class BigqueryParam {
  constructor(
    readonly value: unknown,
    readonly type: BigqueryType,
  ) {}
}

/** Binds `value` with an explicit type, e.g. `bigqueryParam(null, 'TIMESTAMP')` or an ARRAY<STRUCT>. */
export function bigqueryParam(value: unknown, type: BigqueryType): BigqueryParam {
  return new BigqueryParam(value, type);
}

/**
 * Positional values and their types for the SDK. Types are always sent, for every parameter: the
 * SDK infers a type from a non-null value but refuses a null one ("Parameter types must be provided
 * for null values"), and in positional mode types are all or nothing.
 * https://cloud.google.com/bigquery/docs/parameterized-queries
 */
export function bigqueryParams(parameters: readonly unknown[]): { params: unknown[]; types: BigqueryType[] } {
  const params: unknown[] = [];
  const types: BigqueryType[] = [];
  parameters.forEach((parameter, index) => {
    if (parameter instanceof BigqueryParam) {
      params.push(toWire(parameter.value));
      types.push(parameter.type);
      return;
    }
    const type = inferType(parameter);
    if (type === undefined) {
      throw new WarehouseError(
        `BigQuery parameter ${index + 1} has no type (a null or empty array); bind it with bigqueryParam(value, type)`,
      );
    }
    params.push(toWire(parameter));
    types.push(type);
  });
  return { params, types };
}

function inferType(value: unknown): BigqueryType | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string') return 'STRING';
  if (typeof value === 'boolean') return 'BOOL';
  if (typeof value === 'bigint') return 'INT64';
  if (typeof value === 'number') return Number.isInteger(value) ? 'INT64' : 'FLOAT64';
  if (value instanceof Date) return 'TIMESTAMP';
  if (value instanceof Uint8Array) return 'BYTES';
  if (Array.isArray(value)) {
    const element = value.find((item) => item !== null && item !== undefined);
    const type = inferType(element);
    return type === undefined ? undefined : [type];
  }
  if (typeof value === 'object') return 'JSON';
  return undefined;
}

/** Values the SDK serializes as we mean them: bigint as decimal text, Uint8Array as a Buffer. */
function toWire(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Uint8Array && !Buffer.isBuffer(value)) return Buffer.from(value);
  if (Array.isArray(value)) return value.map(toWire);
  if (value !== null && typeof value === 'object' && !(value instanceof Date) && !Buffer.isBuffer(value)) {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, toWire(v)]),
    );
  }
  return value;
}
