import { DefaultQueryCompiler, type DataTypeNode } from 'kysely';
import { snowflakeStoredName } from './snowflake-identifiers.js';

/**
 * Snowflake SQL text for Kysely: double-quoted identifiers in their stored (upper-case) form, `?`
 * binds, and string literals escaped for Snowflake, where a backslash is an escape character.
 * https://docs.snowflake.com/en/sql-reference/identifiers-syntax
 * https://docs.snowflake.com/en/sql-reference/data-types-text#escape-sequences-in-single-quoted-string-constants
 */
export class SnowflakeQueryCompiler extends DefaultQueryCompiler {
  protected override getCurrentParameterPlaceholder(): string {
    // Positional binds; snowflake-sdk sends them as `bindings` {"1": {type, value}, ...}.
    // https://docs.snowflake.com/en/developer-guide/node-js/nodejs-driver-execute#binding-statement-parameters
    return '?';
  }

  protected override sanitizeIdentifier(identifier: string): string {
    return snowflakeStoredName(identifier).replace(/"/g, '""');
  }

  protected override sanitizeStringLiteral(value: string): string {
    return value.replace(/[\\']/g, (char) => (char === '\\' ? '\\\\' : "''"));
  }

  /** Postgres-flavoured type names from portable schema code, in Snowflake's names. */
  protected override visitDataType(node: DataTypeNode): void {
    const mapped = SNOWFLAKE_TYPES[String(node.dataType).toLowerCase()];
    if (mapped) this.append(mapped);
    else super.visitDataType(node);
  }
}

const SNOWFLAKE_TYPES: Record<string, string> = {
  text: 'VARCHAR',
  uuid: 'VARCHAR',
  integer: 'NUMBER(38,0)',
  int4: 'NUMBER(38,0)',
  int8: 'NUMBER(38,0)',
  bigint: 'NUMBER(38,0)',
  smallint: 'NUMBER(38,0)',
  'double precision': 'FLOAT',
  float8: 'FLOAT',
  timestamptz: 'TIMESTAMP_TZ',
  timestamp: 'TIMESTAMP_NTZ',
  json: 'VARIANT',
  jsonb: 'VARIANT',
  bytea: 'BINARY',
};
