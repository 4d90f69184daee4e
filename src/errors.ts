/**
 * The error taxonomy of Tailor. Every error says who must act and whether retrying helps.
 * Per-row problems are results, never exceptions. The CLI maps these classes to exit codes in
 * one place (`src/cli/exit-codes.ts`).
 */

export type ErrorKind =
  | 'config'
  | 'auth'
  | 'retryable'
  | 'destination_api'
  | 'destination_unreachable'
  | 'model_sql'
  | 'warehouse'
  | 'lock_busy'
  | 'audience_missing'
  | 'audience_owned'
  | 'internal';

export abstract class TailorError extends Error {
  abstract readonly kind: ErrorKind;
  /** A short hint telling the user what to do about it. */
  readonly hint: string | undefined;

  constructor(message: string, options?: { cause?: unknown; hint?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options?.hint;
  }
}

/** One problem found in the project's configuration, with the file and the YAML path. */
export interface ConfigIssue {
  file: string;
  /** Dotted YAML path, e.g. `activations.vip_x.destination`; empty for the whole file. */
  path: string;
  message: string;
  line?: number;
  column?: number;
}

export function formatConfigIssue(issue: ConfigIssue): string {
  const where = issue.line !== undefined ? `:${issue.line}:${issue.column ?? 1}` : '';
  const path = issue.path ? ` ${issue.path}:` : '';
  return `${issue.file}${where}:${path} ${issue.message}`;
}

/** The project is wrong: a user must edit tailor.yml or the models. Exit code 2. */
export class ConfigError extends TailorError {
  readonly kind = 'config' as const;
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[] | string, options?: { cause?: unknown; hint?: string }) {
    const list = typeof issues === 'string' ? [{ file: 'tailor.yml', path: '', message: issues }] : issues;
    super(list.map(formatConfigIssue).join('\n'), options);
    this.issues = list;
  }
}

/** Credentials were refused. Retrying does not help; a user must fix the named credential. */
export class AuthError extends TailorError {
  readonly kind = 'auth' as const;
}

/** A transient failure; the same call may succeed after `retryAfterMs`. */
export class RetryableError extends TailorError {
  readonly kind = 'retryable' as const;
  readonly retryAfterMs: number | undefined;

  constructor(message: string, options?: { cause?: unknown; hint?: string; retryAfterMs?: number }) {
    super(message, options);
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/** The destination's API answered with an error that retrying will not fix. */
export class DestinationApiError extends TailorError {
  readonly kind = 'destination_api' as const;
  readonly status: number | undefined;
  readonly code: string | undefined;

  constructor(message: string, options?: { cause?: unknown; hint?: string; status?: number; code?: string }) {
    super(message, options);
    this.status = options?.status;
    this.code = options?.code;
  }
}

/**
 * The destination could not be reached at all: the connection was refused, its host name does not
 * resolve, there is no route, or TLS refused its certificate. Waiting does not mend these, so they are
 * not retried; a user must check the address, that the server (a local emulator) runs, or the network.
 */
export class DestinationUnreachableError extends TailorError {
  readonly kind = 'destination_unreachable' as const;
  /** Scheme, host and port only: never a path's query string, never credentials. */
  readonly origin: string;

  constructor(message: string, options: { origin: string; cause?: unknown; hint?: string }) {
    super(message, options);
    this.origin = options.origin;
  }
}

/** The analyst's model SQL failed in the warehouse. */
export class ModelSqlError extends TailorError {
  readonly kind = 'model_sql' as const;
  readonly model: string;

  constructor(model: string, message: string, options?: { cause?: unknown; hint?: string }) {
    super(`model ${model}: ${message}`, options);
    this.model = model;
  }
}

/** The warehouse failed (connection, permissions, state tables). */
export class WarehouseError extends TailorError {
  readonly kind = 'warehouse' as const;
}

/** Another run of the same activation holds the warehouse lock. */
export class LockBusyError extends TailorError {
  readonly kind = 'lock_busy' as const;
  readonly activation: string;

  constructor(activation: string, options?: { cause?: unknown; hint?: string }) {
    super(`activation ${activation} is already running elsewhere (its warehouse lock is held)`, {
      hint: 'wait for the other run to finish; runs of one activation never interleave',
      ...options,
    });
    this.activation = activation;
  }
}

/** The audience an activation is bound to no longer exists at the destination. */
export class AudienceMissingError extends TailorError {
  readonly kind = 'audience_missing' as const;
}

/**
 * The audience is fed by another activation or another project's state (its owner mark says so), or
 * has members and no mark: a run never adopts it unless told to (`tailor sync --adopt`).
 */
export class AudienceOwnedError extends TailorError {
  readonly kind = 'audience_owned' as const;
}

export function isTailorError(error: unknown): error is TailorError {
  return error instanceof TailorError;
}

/** The message of any thrown value, without a stack. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
