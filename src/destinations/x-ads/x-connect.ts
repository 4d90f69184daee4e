/**
 * What `tailor connect` (and the web UI's "Connect X") keeps once the user has signed in and chosen an
 * ad account: the destination in tailor.yml (comments kept) with `${VAR}` references, and the four
 * secrets in the project's `.env` (mode 0600, git-ignored), never in tailor.yml.
 */
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DOTENV_FILE, ensureGitignored, writeDotEnv } from '../../config/dotenv.js';
import { substituteEnv } from '../../config/env.js';
import {
  addDestination,
  editConfig,
  readRawDestination,
  setDestinationValues,
} from '../../config/write-config.js';
import { AuthError, ConfigError, type ConfigIssue } from '../../errors.js';
import { DEFAULT_API_URL } from './api-url.js';
import {
  type AdAccount,
  accountRefusal,
  type ConsumerKeys,
  defaultOAuthUrl,
  type UserTokens,
} from './x-oauth-flow.js';

export const CREDENTIAL_KEYS = [
  'consumer_key',
  'consumer_secret',
  'access_token',
  'access_token_secret',
] as const;
export type CredentialKey = (typeof CREDENTIAL_KEYS)[number];
export type CredentialVars = Record<CredentialKey, string>;

/** `X_CONSUMER_KEY`, ... for destination `x`; `X_<NAME>_CONSUMER_KEY`, ... for any other. */
export function defaultCredentialVars(destination: string): CredentialVars {
  const prefix = destination === 'x' ? 'X_' : `X_${destination.toUpperCase().replace(/[^A-Z0-9]+/g, '_')}_`;
  return {
    consumer_key: `${prefix}CONSUMER_KEY`,
    consumer_secret: `${prefix}CONSUMER_SECRET`,
    access_token: `${prefix}ACCESS_TOKEN`,
    access_token_secret: `${prefix}ACCESS_TOKEN_SECRET`,
  };
}

/** The variable a value is wholly a reference to (`${VAR}` or `${VAR:-default}`), if it is one. */
export function referencedVar(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  return /^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}$/.exec(value.trim())?.[1];
}

/** The default activation settings a new destination gets (as `tailor init` used to write them). */
export const DEFAULT_ACTIVATION_SETTINGS = {
  audience_name: 'Tailor: {model}',
  audience_description: '{description}',
  schedule: 'every 6 hours',
  phone_default_region: 'US',
  mappings: {
    email: 'email',
    phone: 'phone_number',
    x_handle: 'handle',
    x_user_id: 'twitter_id',
    device_id: 'device_id',
  },
} as const;

/** A destination already in tailor.yml, as connect needs it (its `${VAR}`s resolved). */
export interface ExistingDestination {
  accountId: string;
  apiUrl: string;
  oauthUrl: string;
  /** Where its credentials are read from: the variables its `${VAR}`s name (defaults for the others). */
  vars: CredentialVars;
}

/**
 * `destinations.<name>` as tailor.yml has it, or undefined when there is none. Only its account,
 * URLs and credential references are read, so a destination whose tokens are not set yet (the
 * reason to connect) still loads.
 */
export async function readExistingDestination(
  configPath: string,
  name: string,
  env: Readonly<Record<string, string | undefined>>,
): Promise<ExistingDestination | undefined> {
  const raw = await readRawDestination(configPath, name);
  if (!raw) return undefined;
  const issues: ConfigIssue[] = [];
  if (raw.type !== 'x_ads') {
    throw new ConfigError([
      {
        file: 'tailor.yml',
        path: `destinations.${name}.type`,
        message: `is ${JSON.stringify(raw.type)}; connect signs in to x_ads destinations`,
      },
    ]);
  }
  const pick = (key: string): string | undefined => {
    const value = raw[key];
    if (value === undefined) return undefined;
    return String(substituteEnv(value, env, 'tailor.yml', issues, ['destinations', name, key]));
  };
  const accountId = pick('account_id');
  const apiUrl = pick('api_url') ?? DEFAULT_API_URL;
  const oauthUrl = pick('oauth_url');
  if (!accountId)
    issues.push({ file: 'tailor.yml', path: `destinations.${name}.account_id`, message: 'is missing' });
  if (issues.length > 0) throw new ConfigError(issues);
  const credentials = (raw.credentials ?? {}) as Record<string, unknown>;
  const defaults = defaultCredentialVars(name);
  const vars = { ...defaults };
  for (const key of CREDENTIAL_KEYS) vars[key] = referencedVar(credentials[key]) ?? defaults[key];
  return { accountId: accountId!.toLowerCase(), apiUrl, oauthUrl: oauthUrl ?? defaultOAuthUrl(apiUrl), vars };
}

/** Refuses when the user reaches no account, or none approved for custom audiences (before a picker shows them). */
export function requireUsableAccount(accounts: readonly AdAccount[], who: string): void {
  if (accounts.length === 0) chooseAccount(accounts, '', who);
  if (accounts.every((a) => accountRefusal(a) !== undefined)) {
    throw new AuthError(
      `none of the ad accounts ${who} can reach is approved for custom audiences (${accounts
        .map((a) => `${a.id}: ${a.approvalStatus ?? 'no approval status'}`)
        .join(', ')})`,
      {
        hint: 'finish the account setup in X Ads (https://ads.x.com), or sign in as a user of an approved account',
      },
    );
  }
}

/**
 * The account to use among those the user reaches: `wanted` (an id), refused when it is not there, or
 * not approved for custom audiences.
 */
export function chooseAccount(accounts: readonly AdAccount[], wanted: string, who: string): AdAccount {
  if (accounts.length === 0) {
    throw new AuthError(`${who} can reach no X ad account`, {
      hint: 'create one at https://ads.x.com, or ask an account admin to add this user (Partner Audience Manager or Ad Manager)',
    });
  }
  const account = accounts.find((a) => a.id.toLowerCase() === wanted.toLowerCase());
  if (!account) {
    throw new AuthError(`${who} cannot reach ad account ${wanted}`, {
      hint: `reachable: ${accounts.map((a) => `${a.id} ("${a.name}", ${a.approvalStatus ?? 'no approval status'})`).join(', ')}`,
    });
  }
  const refusal = accountRefusal(account);
  if (refusal) {
    throw new AuthError(refusal, {
      hint: 'choose an approved account, or finish the account setup in X Ads (https://ads.x.com) and connect again',
    });
  }
  return account;
}

export interface SaveConnectionInput {
  projectDir: string;
  configPath: string;
  destination: string;
  /** Undefined for an existing destination: its account stays. */
  accountId?: string;
  /** For a new destination (default https://ads-api.x.com). */
  apiUrl?: string;
  /** For a new destination, written only when given. */
  oauthUrl?: string;
  /** For a new destination: write DEFAULT_ACTIVATION_SETTINGS (default true). */
  withDefaults?: boolean;
  consumer: ConsumerKeys;
  tokens: UserTokens;
  /**
   * Loads the project as it is on disk (the caller's loader, reading `.env` afresh). Run after the
   * edit: a problem it reports under `destinations.<name>` (or in the file as a whole) undoes the
   * edit and the `.env` change and is thrown; problems elsewhere, which connecting did not cause, are
   * left to `tailor check`.
   */
  validate: () => Promise<unknown>;
}

export interface SavedConnection {
  /** A new destination was written; false: an existing one got fresh tokens. */
  created: boolean;
  /** tailor.yml changed (false when an existing destination already referenced variables). */
  configChanged: boolean;
  /** The variables written to .env. */
  variables: string[];
  /** `.env` was added to .gitignore. */
  gitignoreChanged: boolean;
}

/**
 * Writes the connection: the four secrets into `.env` (the variables an existing destination already
 * references, or X_CONSUMER_KEY, ...), `.env` into .gitignore, and, for a new destination, the
 * destination into tailor.yml. An existing destination keeps everything (account, URLs, defaults);
 * only a credential written as a literal rather than a `${VAR}` is replaced by a reference.
 */
export async function saveConnection(input: SaveConnectionInput): Promise<SavedConnection> {
  const raw = await readRawDestination(input.configPath, input.destination);
  const defaults = defaultCredentialVars(input.destination);
  const vars: CredentialVars = { ...defaults };
  const replace: Array<readonly [readonly string[], string]> = [];
  if (raw) {
    const credentials = (raw.credentials ?? {}) as Record<string, unknown>;
    for (const key of CREDENTIAL_KEYS) {
      const name = referencedVar(credentials[key]);
      if (name) vars[key] = name;
      else replace.push([['credentials', key], `\${${defaults[key]}}`]);
    }
  } else if (input.accountId === undefined) {
    throw new Error('saveConnection: a new destination needs an account id');
  }
  const values: Record<CredentialKey, string> = {
    consumer_key: input.consumer.consumerKey,
    consumer_secret: input.consumer.consumerSecret,
    access_token: input.tokens.accessToken,
    access_token_secret: input.tokens.accessTokenSecret,
  };
  const envPath = join(input.projectDir, DOTENV_FILE);
  const envBefore = await readFile(envPath, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  await writeDotEnv(
    input.projectDir,
    Object.fromEntries(CREDENTIAL_KEYS.map((key) => [vars[key], values[key]])),
  );
  let configChanged = false;
  try {
    await editConfig(
      input.configPath,
      (doc) => {
        if (raw) {
          configChanged = replace.length > 0 && setDestinationValues(doc, input.destination, replace);
          return configChanged;
        }
        addDestination(
          doc,
          input.destination,
          {
            type: 'x_ads',
            account_id: input.accountId,
            api_url: input.apiUrl ?? DEFAULT_API_URL,
            ...(input.oauthUrl !== undefined ? { oauth_url: input.oauthUrl } : {}),
            credentials: Object.fromEntries(CREDENTIAL_KEYS.map((key) => [key, `\${${vars[key]}}`])),
            ...(input.withDefaults === false ? {} : { defaults: DEFAULT_ACTIVATION_SETTINGS }),
          },
          ' Written by `tailor connect`; the credentials are in .env (git-ignored). `defaults` are the\n' +
            ' settings `tailor activate <model>` gives a new activation.',
        );
        configChanged = true;
        return true;
      },
      () => validateDestination(input.validate, input.destination),
    );
  } catch (error) {
    // Nothing written: .env goes back to what it was (or away, when connect created it).
    if (envBefore === undefined) await rm(envPath, { force: true });
    else {
      await writeFile(envPath, envBefore, { mode: 0o600 });
      await chmod(envPath, 0o600);
    }
    throw error;
  }
  const gitignoreChanged = await ensureGitignored(input.projectDir);
  return {
    created: !raw,
    configChanged,
    variables: CREDENTIAL_KEYS.map((key) => vars[key]),
    gitignoreChanged,
  };
}

/** Runs `validate`, refusing only the problems of this destination (or of the file as a whole). */
async function validateDestination(validate: () => Promise<unknown>, destination: string): Promise<void> {
  try {
    await validate();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const prefix = `destinations.${destination}`;
    const ours = error.issues.filter(
      (issue) =>
        issue.file === 'tailor.yml' &&
        (issue.path === '' || issue.path === prefix || issue.path.startsWith(`${prefix}.`)),
    );
    if (ours.length > 0)
      throw new ConfigError(ours, {
        cause: error,
        hint: 'nothing was written; fix tailor.yml (`tailor check` says where) and connect again',
      });
  }
}
