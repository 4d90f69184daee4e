import { DefaultQueryCompiler, type DataTypeNode } from 'kysely';

/**
 * GoogleSQL text for Kysely: backtick-quoted identifiers, backslash-escaped literals, and positional
 * `?` parameters. Quoted identifiers and string literals escape with a backslash, not by doubling:
 * https://cloud.google.com/bigquery/docs/reference/standard-sql/lexical#quoted_identifiers
 */
export class BigqueryQueryCompiler extends DefaultQueryCompiler {
  protected override getCurrentParameterPlaceholder(): string {
    // Positional query parameters are written `?`; their types travel beside the values
    // (see bigquery-params.ts): https://cloud.google.com/bigquery/docs/parameterized-queries
    return '?';
  }

  protected override getLeftIdentifierWrapper(): string {
    return '`';
  }

  protected override getRightIdentifierWrapper(): string {
    return '`';
  }

  protected override sanitizeIdentifier(identifier: string): string {
    return identifier.replace(/[\\`]/g, (char) => `\\${char}`);
  }

  protected override sanitizeStringLiteral(value: string): string {
    return value.replace(/[\\']/g, (char) => `\\${char}`);
  }

  /**
   * A bare `null` becomes the literal NULL: BigQuery refuses an untyped null parameter ("Parameter
   * types must be provided for null values"), while a NULL literal takes its type from the context.
   * Typed nulls that matter (inside arrays, structs) go through `bigqueryParam(null, type)`.
   * https://cloud.google.com/bigquery/docs/parameterized-queries
   */
  protected override appendValue(parameter: unknown): void {
    if (parameter === null || parameter === undefined) {
      this.append('NULL');
      return;
    }
    super.appendValue(parameter);
  }

  /** Postgres-flavoured type names from portable schema code, in GoogleSQL's names. */
  protected override visitDataType(node: DataTypeNode): void {
    const mapped = BIGQUERY_TYPES[String(node.dataType).toLowerCase()];
    if (mapped) this.append(mapped);
    else super.visitDataType(node);
  }
}

const BIGQUERY_TYPES: Record<string, string> = {
  text: 'STRING',
  varchar: 'STRING',
  char: 'STRING',
  uuid: 'STRING',
  integer: 'INT64',
  int4: 'INT64',
  int8: 'INT64',
  bigint: 'INT64',
  smallint: 'INT64',
  boolean: 'BOOL',
  real: 'FLOAT64',
  'double precision': 'FLOAT64',
  float8: 'FLOAT64',
  numeric: 'NUMERIC',
  timestamptz: 'TIMESTAMP',
  timestamp: 'TIMESTAMP',
  date: 'DATE',
  json: 'JSON',
  jsonb: 'JSON',
  bytea: 'BYTES',
};
