import { z } from 'zod';
import { nameSchema } from '../config/names.js';
import type { DbtModelRef } from './dbt-manifest.js';

/** `models/<name>.yml`: what an analyst writes beside the segment's SQL. */
export const modelMetaSchema = z.strictObject({
  name: nameSchema,
  description: z.string().default(''),
  primary_key: z
    .string()
    .min(1, { message: 'primary_key is required (the column that identifies a member)' }),
});

/** A segment: one SELECT in `models/<name>.sql`, opaque to Tailor, and its metadata. */
export interface Model {
  name: string;
  description: string;
  primaryKey: string;
  /** The analyst's SQL, trimmed, without a trailing semicolon. Never parsed or rewritten. */
  sql: string;
  sqlPath: string;
  ymlPath: string;
  /** Set for a model read from a dbt manifest: the dbt node and the relation it is queried as. */
  dbt?: DbtModelRef;
}
