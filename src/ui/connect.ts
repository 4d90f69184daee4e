import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { CONFIG_FILE } from '../config/load-project.js';
import { NAME_PATTERN } from '../config/names.js';
import { DEFAULT_API_URL, isLoopbackHost } from '../destinations/x-ads/api-url.js';
import {
  chooseAccount,
  type CredentialVars,
  defaultCredentialVars,
  type ExistingDestination,
  readExistingDestination,
  requireUsableAccount,
  saveConnection,
} from '../destinations/x-ads/x-connect.js';
import { EMBEDDED_API_URL } from '../destinations/x-ads/x-ads-config.js';
import {
  type AdAccount,
  type ConsumerKeys,
  defaultOAuthUrl,
  listAdAccounts,
  type RequestToken,
  type UserTokens,
  XSignIn,
} from '../destinations/x-ads/x-oauth-flow.js';
import { AuthError, ConfigError } from '../errors.js';

/**
 * The web UI's "Connect X": `tailor connect`'s 3-legged OAuth 1.0a sign-in with the UI's own
 * `/connect/callback` as the callback, over the same modules (XSignIn, listAdAccounts,
 * chooseAccount, saveConnection), so what it writes is exactly what the command writes.
 *
 * Sign-ins in progress are kept here, in memory, for a few minutes: the request token's secret, the
 * app's keys and, once signed in, the user's tokens never leave the server (not in a page, a URL, a
 * cookie or a log line). The browser carries only X's public request token (X puts it in the URL)
 * and, at the account picker, a random handle of the signed-in session.
 */

/** How long a sign-in may wait for X's redirect, then for the account choice. */
export const SIGN_IN_TTL_MS = 10 * 60_000;
/** At most this many sign-ins in progress (the oldest is forgotten first). */
const MAX_PENDING = 20;

export interface ConnectForm {
  consumerKey?: string | undefined;
  consumerSecret?: string | undefined;
  destination?: string | undefined;
  apiUrl?: string | undefined;
  oauthUrl?: string | undefined;
}

/** What the form shows before signing in: which app keys the environment already has (never their values). */
export interface ConnectDefaults {
  destination: string;
  existing: ExistingDestination | undefined;
  vars: CredentialVars;
  hasConsumerKey: boolean;
  hasConsumerSecret: boolean;
}

interface Started {
  destination: string;
  apiUrl: string;
  oauthUrl: string;
  /** Written into a new destination only when the user gave it. */
  explicitOAuthUrl: string | undefined;
  existing: ExistingDestination | undefined;
  consumer: ConsumerKeys;
  expiresAt: number;
}

interface Pending extends Started {
  requestToken: RequestToken;
}

interface SignedIn extends Started {
  tokens: UserTokens;
  accounts: AdAccount[];
  who: string;
}

export type CallbackOutcome =
  | { kind: 'connected'; destination: string; account: AdAccount; created: boolean }
  | { kind: 'choose'; handle: string; destination: string; who: string; accounts: AdAccount[] };

export interface ConnectFlowOptions {
  projectDir: string;
  /** The environment (process over `.env`) as it is now: where the app's keys may already be. */
  env: () => Readonly<Record<string, string | undefined>>;
  /** Loads the project as it is on disk (`.env` read again): saveConnection's check of its edit. */
  validate: () => Promise<unknown>;
  logger: Logger;
  now?: () => number;
}

function formError(message: string, hint?: string): ConfigError {
  return new ConfigError([{ file: 'form', path: '', message }], hint ? { hint } : undefined);
}

function given(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

export class ConnectFlow {
  readonly #options: ConnectFlowOptions;
  readonly #pending = new Map<string, Pending>();
  readonly #signedIn = new Map<string, SignedIn>();

  constructor(options: ConnectFlowOptions) {
    this.#options = options;
  }

  get #configPath(): string {
    return join(this.#options.projectDir, CONFIG_FILE);
  }

  #now(): number {
    return (this.#options.now ?? Date.now)();
  }

  #prune(): void {
    const now = this.#now();
    for (const map of [this.#pending, this.#signedIn] as Array<Map<string, { expiresAt: number }>>) {
      for (const [key, value] of map) if (value.expiresAt <= now) map.delete(key);
      while (map.size > MAX_PENDING) map.delete(map.keys().next().value!);
    }
  }

  /** Sign-ins waiting for X or for the account choice (for tests and the log). */
  get inProgress(): number {
    this.#prune();
    return this.#pending.size + this.#signedIn.size;
  }

  async defaults(destination = 'x'): Promise<ConnectDefaults> {
    const name = NAME_PATTERN.test(destination) ? destination : 'x';
    const env = this.#options.env();
    const existing = await readExistingDestination(this.#configPath, name, env).catch(() => undefined);
    const vars = existing?.vars ?? defaultCredentialVars(name);
    return {
      destination: name,
      existing,
      vars,
      hasConsumerKey: Boolean(env[vars.consumer_key]),
      hasConsumerSecret: Boolean(env[vars.consumer_secret]),
    };
  }

  /**
   * Step 1: checks the form as `tailor connect` checks its options, asks X for a request token with
   * `callbackUrl`, and returns the authorize URL to send the browser to. Nothing is written.
   */
  async start(form: ConnectForm, callbackUrl: string, signal?: AbortSignal): Promise<string> {
    const destination = given(form.destination) ?? 'x';
    if (!NAME_PATTERN.test(destination))
      throw formError(
        `not a destination name: ${JSON.stringify(destination)}`,
        'use lower-case letters, digits and underscores, e.g. x or x_eu',
      );
    const env = this.#options.env();
    const existing = await readExistingDestination(this.#configPath, destination, env);
    const apiUrlGiven = given(form.apiUrl);
    const oauthUrlGiven = given(form.oauthUrl);
    for (const [field, value] of [
      ['API URL', apiUrlGiven],
      ['OAuth URL', oauthUrlGiven],
    ] as const) {
      if (value === undefined) continue;
      const url = URL.parse(value);
      if (!url || !(url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname))))
        throw formError(
          `the ${field} must be an https URL (plain http only on loopback), not ${value}`,
          `X's are ${field === 'API URL' ? 'https://ads-api.x.com' : 'https://api.x.com'}; a local emulator's is http://127.0.0.1:<port>`,
        );
    }
    if (existing) {
      if (apiUrlGiven !== undefined && apiUrlGiven !== existing.apiUrl)
        throw formError(
          `destination ${destination} already has api_url ${existing.apiUrl}; connecting again only refreshes its tokens`,
          `edit destinations.${destination}.api_url in tailor.yml, or connect another destination name`,
        );
      if (existing.apiUrl === EMBEDDED_API_URL)
        throw formError(
          `destination ${destination} uses the embedded emulator (api_url: embedded), which needs no sign-in`,
          'set its api_url to https://ads-api.x.com or a standalone emulator, then connect',
        );
    }
    const apiUrl = existing?.apiUrl ?? apiUrlGiven ?? DEFAULT_API_URL;
    const oauthUrl = oauthUrlGiven ?? existing?.oauthUrl ?? defaultOAuthUrl(apiUrl);
    const vars = existing?.vars ?? defaultCredentialVars(destination);
    const consumerKey = given(form.consumerKey) ?? given(env[vars.consumer_key]);
    const consumerSecret = given(form.consumerSecret) ?? given(env[vars.consumer_secret]);
    if (consumerKey === undefined || consumerSecret === undefined)
      throw formError(
        `enter your X app's ${consumerKey === undefined ? 'API key (consumer key)' : 'API key secret (consumer secret)'}`,
        'it is on your app\'s "Keys and tokens" page in X\'s developer portal (https://developer.x.com)',
      );
    const consumer = { consumerKey, consumerSecret };
    const signIn = new XSignIn({ oauthUrl, consumer, logger: this.#options.logger });
    const requestToken = await signIn.requestToken(callbackUrl, signal);
    this.#prune();
    this.#pending.set(requestToken.token, {
      destination,
      apiUrl,
      oauthUrl,
      explicitOAuthUrl: existing ? undefined : oauthUrlGiven,
      existing,
      consumer,
      requestToken,
      expiresAt: this.#now() + SIGN_IN_TTL_MS,
    });
    this.#options.logger.info({ destination }, 'Connect X: sent the browser to X to authorize');
    return signIn.authorizeUrl(requestToken);
  }

  /**
   * Step 2, X's redirect back: "Cancel" (`denied`) forgets the sign-in; a verifier is exchanged for
   * the user's tokens and the ad accounts are listed. An existing destination is then saved at once
   * (its account stays, as with `tailor connect`); a new one waits for the account choice.
   */
  async callback(
    query: { oauth_token?: string; oauth_verifier?: string; denied?: string },
    signal?: AbortSignal,
  ): Promise<CallbackOutcome> {
    this.#prune();
    const token = query.denied ?? query.oauth_token ?? '';
    const pending = this.#pending.get(token);
    this.#pending.delete(token);
    if (query.denied !== undefined)
      throw new AuthError('the authorization was cancelled on X\'s page ("Cancel"); nothing was written', {
        hint: 'connect again and click "Authorize app"',
      });
    if (!pending)
      throw new AuthError('this sign-in is unknown or has expired (or the UI was restarted)', {
        hint: `connect again, and authorize within ${SIGN_IN_TTL_MS / 60_000} minutes`,
      });
    if (!query.oauth_verifier)
      throw new AuthError('X sent the browser back without a verifier', { hint: 'connect again' });
    const signIn = new XSignIn({
      oauthUrl: pending.oauthUrl,
      consumer: pending.consumer,
      logger: this.#options.logger,
    });
    const tokens = await signIn.accessToken(pending.requestToken, query.oauth_verifier, signal);
    const who = tokens.screenName ? `the X user @${tokens.screenName}` : 'the signed-in X user';
    const accounts = await listAdAccounts({
      apiUrl: pending.apiUrl,
      credentials: { ...pending.consumer, ...tokens },
      logger: this.#options.logger,
      destination: pending.destination,
      ...(signal ? { signal } : {}),
    });
    if (pending.existing) {
      const account = chooseAccount(accounts, pending.existing.accountId, who);
      return this.#save({ ...pending, tokens, accounts, who }, account);
    }
    requireUsableAccount(accounts, who);
    const handle = randomBytes(18).toString('base64url');
    this.#signedIn.set(handle, {
      ...pending,
      tokens,
      accounts,
      who,
      expiresAt: this.#now() + SIGN_IN_TTL_MS,
    });
    return { kind: 'choose', handle, destination: pending.destination, who, accounts };
  }

  /** The account picker of a sign-in, again (a refused choice shows it once more). */
  picker(handle: string): Extract<CallbackOutcome, { kind: 'choose' }> | undefined {
    this.#prune();
    const signedIn = this.#signedIn.get(handle);
    if (!signedIn) return undefined;
    return {
      kind: 'choose',
      handle,
      destination: signedIn.destination,
      who: signedIn.who,
      accounts: signedIn.accounts,
    };
  }

  /** Step 3: the account chosen on the picker; writes the destination as `tailor connect` does. */
  async choose(handle: string, accountId: string): Promise<CallbackOutcome> {
    this.#prune();
    const signedIn = this.#signedIn.get(handle);
    if (!signedIn)
      throw new AuthError('this sign-in is unknown or has expired (or the UI was restarted)', {
        hint: `connect again, and choose the account within ${SIGN_IN_TTL_MS / 60_000} minutes`,
      });
    const account = chooseAccount(signedIn.accounts, accountId, signedIn.who);
    const outcome = await this.#save(signedIn, account);
    this.#signedIn.delete(handle);
    return outcome;
  }

  async #save(signedIn: SignedIn, account: AdAccount): Promise<CallbackOutcome> {
    const existing = signedIn.existing;
    const saved = await saveConnection({
      projectDir: this.#options.projectDir,
      configPath: this.#configPath,
      destination: signedIn.destination,
      ...(existing ? {} : { accountId: account.id, apiUrl: signedIn.apiUrl }),
      ...(!existing && signedIn.explicitOAuthUrl !== undefined
        ? { oauthUrl: signedIn.explicitOAuthUrl }
        : {}),
      consumer: signedIn.consumer,
      tokens: signedIn.tokens,
      validate: this.#options.validate,
    });
    this.#options.logger.info(
      { destination: signedIn.destination, created: saved.created, configChanged: saved.configChanged },
      saved.created
        ? 'Connect X: destination written into tailor.yml, tokens into .env'
        : 'Connect X: tokens refreshed in .env',
    );
    return { kind: 'connected', destination: signedIn.destination, account, created: saved.created };
  }
}
