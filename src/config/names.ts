import { z } from 'zod';

/**
 * Activation ids, model names and the state schema name become parts of warehouse table names, so
 * they are held to a portable identifier shape (lowercase, digits, underscores, at most 63 chars:
 * Postgres' identifier limit).
 */
export const NAME_PATTERN = /^[a-z][a-z0-9_]{0,62}$/;

export const nameSchema = z
  .string()
  .regex(NAME_PATTERN, { message: 'must match ^[a-z][a-z0-9_]{0,62}$ (it names warehouse tables)' });
