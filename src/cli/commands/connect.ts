import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { readDotEnv } from '../../config/dotenv.js';
import { CONFIG_FILE, loadProject } from '../../config/load-project.js';
import { DEFAULT_API_URL, isLoopbackHost } from '../../destinations/x-ads/api-url.js';
import {
  chooseAccount,
  defaultCredentialVars,
  readExistingDestination,
  requireUsableAccount,
  saveConnection,
} from '../../destinations/x-ads/x-connect.js';
import { EMBEDDED_API_URL } from '../../destinations/x-ads/x-ads-config.js';
import {
  type AdAccount,
  accountRefusal,
  CallbackListener,
  defaultOAuthUrl,
  listAdAccounts,
  OOB,
  type RequestToken,
  XSignIn,
} from '../../destinations/x-ads/x-oauth-flow.js';
import { ConfigError } from '../../errors.js';
import { NAME_PATTERN } from '../../config/names.js';
import { type CommandContext, withExamples, withGlobalOptions } from '../context.js';
import { commandLineError, EXIT } from '../exit-codes.js';
import { openBrowser } from '../open-browser.js';
import { choose, readLine, readSecret } from '../prompt.js';
import type { Wrap } from './index.js';

interface ConnectFlags {
  consumerKey?: string;
  consumerSecret?: string;
  account?: string;
  apiUrl?: string;
  oauthUrl?: string;
  pin: boolean;
  browser: boolean;
  defaults: boolean;
  timeout: string;
  callbackHost: string;
  callbackPort?: string;
}

export function defineConnect(program: Command, wrap: Wrap): void {
  withExamples(withGlobalOptions(program.command('connect [destination]')), [
    'tailor connect                          # sign in in the browser, pick the ad account, write destination x',
    'tailor connect --account 18ce54d4x5t    # no picker (scripts, CI)',
    'tailor connect --pin --no-browser       # a machine no browser can reach: open the URL elsewhere, type the PIN',
    'tailor connect x                        # again for an existing destination: fresh tokens, nothing else changes',
  ])
    .description(
      'sign in to X with your X app (OAuth 1.0a), choose the ad account, and write the destination into tailor.yml (the tokens into .env)',
    )
    .option(
      '--consumer-key <key>',
      "your X app's API key (default: $X_CONSUMER_KEY, else asked on a terminal)",
    )
    .option(
      '--consumer-secret <secret>',
      "your X app's API key secret (default: $X_CONSUMER_SECRET, else asked on a terminal without echo)",
    )
    .option('--account <id>', 'the ad account to use (required off a terminal for a new destination)')
    .option(
      '--api-url <url>',
      `a new destination's Ads API URL (default ${DEFAULT_API_URL}; a local emulator's http://127.0.0.1:<port>)`,
    )
    .option(
      '--oauth-url <url>',
      'where to sign in (default https://api.x.com, or the api_url of a local emulator)',
    )
    .option('--pin', 'PIN-based sign-in: open the URL on any device, then type the PIN X shows here', false)
    .option('--no-browser', 'only print the authorize URL; open no browser')
    .option('--no-defaults', 'do not write default activation settings into a new destination')
    .option('--timeout <seconds>', 'how long to wait for the authorization', '300')
    .option('--callback-host <host>', "the loopback address X's callback comes back to", '127.0.0.1')
    .option(
      '--callback-port <port>',
      'its port (default: a free one; fix it to match the callback URL registered with your app)',
    )
    .action(
      wrap(async (ctx, name: string | undefined, flags: ConnectFlags) => connect(ctx, name ?? 'x', flags)),
    );
}

function positiveInt(value: string, option: string, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < (option === '--callback-port' ? 0 : 1) || n > max)
    throw commandLineError(`${option} must be a whole number up to ${max}, not ${JSON.stringify(value)}`, {
      option,
    });
  return n;
}

async function connect(ctx: CommandContext, name: string, flags: ConnectFlags): Promise<number> {
  const projectDir = ctx.projectDir;
  const configPath = join(projectDir, CONFIG_FILE);
  if (!existsSync(configPath)) {
    throw new ConfigError([{ file: CONFIG_FILE, path: '', message: `file not found in ${projectDir}` }], {
      hint: 'run `tailor init` first (or name the project with --project DIR)',
    });
  }
  if (!NAME_PATTERN.test(name)) throw commandLineError(`not a destination name: ${JSON.stringify(name)}`);
  const timeoutMs = positiveInt(flags.timeout, '--timeout', 24 * 3600) * 1000;
  const callbackPort =
    flags.callbackPort === undefined ? 0 : positiveInt(flags.callbackPort, '--callback-port', 65535);
  const env = ctx.env;
  const stdin = ctx.io.stdin;
  const terminal = stdin?.isTTY === true && ctx.io.stderr.isTTY === true && !ctx.globals.json;

  // What is known before signing in: refuse bad input before the browser dance, and write nothing.
  const existing = await readExistingDestination(configPath, name, env);
  if (existing) {
    if (flags.apiUrl !== undefined && flags.apiUrl !== existing.apiUrl)
      throw commandLineError(
        `destination ${name} already has api_url ${existing.apiUrl}; connect only refreshes its tokens`,
        {
          option: '--api-url',
          hint: `edit destinations.${name}.api_url in tailor.yml, or connect another destination name`,
        },
      );
    if (flags.account !== undefined && flags.account.toLowerCase() !== existing.accountId)
      throw commandLineError(
        `destination ${name} already uses ad account ${existing.accountId}; connect only refreshes its tokens`,
        {
          option: '--account',
          hint: `edit destinations.${name}.account_id in tailor.yml, or connect another destination name`,
        },
      );
    if (existing.apiUrl === EMBEDDED_API_URL)
      throw new ConfigError(
        [
          {
            file: CONFIG_FILE,
            path: `destinations.${name}.api_url`,
            message: 'is `embedded`: the local emulator needs no sign-in (it takes the demo credentials)',
          },
        ],
        {
          hint: 'set api_url (X_API_URL in the example) to https://ads-api.x.com or a standalone emulator, then connect',
        },
      );
  } else if (flags.account === undefined && !terminal) {
    throw commandLineError('choose the ad account with --account ID (no terminal to pick it on)', {
      option: '--account',
      hint: 'run `tailor connect` on a terminal to pick from the accounts you can reach',
    });
  }
  for (const [option, value] of [
    ['--api-url', flags.apiUrl],
    ['--oauth-url', flags.oauthUrl],
  ] as const) {
    if (value === undefined || value === EMBEDDED_API_URL) continue;
    const url = URL.parse(value);
    if (!url || !(url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname))))
      throw commandLineError(`must be an https URL (plain http only on loopback), not ${value}`, {
        option,
        hint: `X's are ${option === '--api-url' ? 'https://ads-api.x.com' : 'https://api.x.com'}; a local emulator's is http://127.0.0.1:<port>`,
      });
  }
  const apiUrl = existing?.apiUrl ?? flags.apiUrl ?? DEFAULT_API_URL;
  if (apiUrl === EMBEDDED_API_URL)
    throw commandLineError(
      '--api-url embedded needs no sign-in (the embedded emulator takes the demo credentials)',
      {
        option: '--api-url',
      },
    );
  const oauthUrl = flags.oauthUrl ?? existing?.oauthUrl ?? defaultOAuthUrl(apiUrl);
  const vars = existing?.vars ?? defaultCredentialVars(name);
  const consumerKey = await credential(
    ctx,
    flags.consumerKey,
    env[vars.consumer_key],
    'consumer key',
    '--consumer-key',
    vars.consumer_key,
    terminal,
    false,
  );
  ctx.addSecrets([consumerKey]);
  const consumerSecret = await credential(
    ctx,
    flags.consumerSecret,
    env[vars.consumer_secret],
    'consumer secret',
    '--consumer-secret',
    vars.consumer_secret,
    terminal,
    true,
  );
  ctx.addSecrets([consumerSecret]);

  const logger = ctx.logger.child({ component: 'connect' }, { level: ctx.globals.debug ? 'debug' : 'warn' });
  const signIn = new XSignIn({ oauthUrl, consumer: { consumerKey, consumerSecret }, logger });
  let requestToken: RequestToken;
  let verifier: string;
  if (flags.pin) {
    requestToken = await signIn.requestToken(OOB, ctx.signal);
    ctx.addSecrets([requestToken.secret]);
    await showAuthorizeUrl(ctx, signIn.authorizeUrl(requestToken), flags.browser, env);
    if (!stdin) throw commandLineError('--pin needs stdin to read the PIN from');
    verifier = await readLine(stdin, ctx.io.stderr, 'PIN shown by X: ', {
      what: 'PIN',
      timeoutMs,
      signal: ctx.signal,
    });
  } else {
    const listener = await CallbackListener.start({ host: flags.callbackHost, port: callbackPort });
    try {
      requestToken = await signIn.requestToken(listener.url, ctx.signal);
      ctx.addSecrets([requestToken.secret]);
      await showAuthorizeUrl(ctx, signIn.authorizeUrl(requestToken), flags.browser, env);
      if (!ctx.globals.json)
        ctx.note(
          `waiting for X to send the browser back to ${listener.url} (up to ${timeoutMs / 1000} s; Ctrl-C to stop)`,
        );
      verifier = await listener.wait(requestToken, { timeoutMs, signal: ctx.signal });
    } finally {
      await listener.close();
    }
  }
  ctx.addSecrets([verifier]);
  const tokens = await signIn.accessToken(requestToken, verifier, ctx.signal);
  ctx.addSecrets([tokens.accessToken, tokens.accessTokenSecret]);
  const who = tokens.screenName ? `the X user @${tokens.screenName}` : 'the signed-in X user';

  const accounts = await listAdAccounts({
    apiUrl,
    credentials: {
      consumerKey,
      consumerSecret,
      accessToken: tokens.accessToken,
      accessTokenSecret: tokens.accessTokenSecret,
    },
    logger,
    destination: name,
    signal: ctx.signal,
  });
  let account: AdAccount;
  const wanted = existing?.accountId ?? flags.account;
  if (wanted !== undefined) {
    account = chooseAccount(accounts, wanted, who);
  } else {
    requireUsableAccount(accounts, who);
    account = await choose(
      stdin!,
      ctx.io.stderr,
      `ad accounts ${who} can reach:`,
      accounts,
      (a) => `${a.name}  ${a.id}  ${a.approvalStatus ?? 'no approval status'}`,
      { signal: ctx.signal, refuse: accountRefusal },
    );
  }

  const saved = await saveConnection({
    projectDir,
    configPath,
    destination: name,
    ...(existing ? {} : { accountId: account.id, apiUrl, withDefaults: flags.defaults }),
    ...(!existing && flags.oauthUrl !== undefined ? { oauthUrl: flags.oauthUrl } : {}),
    consumer: { consumerKey, consumerSecret },
    tokens,
    // The project as every later command loads it: the environment over the .env just written.
    validate: async () => loadProject(projectDir, { ...(await readDotEnv(projectDir)), ...ctx.io.env }),
  });
  if (ctx.globals.json) {
    ctx.printJson({
      ok: true,
      destination: name,
      created: saved.created,
      account: { id: account.id, name: account.name, approval_status: account.approvalStatus },
      user: tokens.screenName ?? null,
      config_changed: saved.configChanged,
      env_file: join(projectDir, '.env'),
      variables: saved.variables,
    });
  } else {
    const what = saved.created
      ? `wrote destinations.${name} into tailor.yml (ad account ${account.id}, "${account.name}")`
      : `refreshed the tokens of destinations.${name} (ad account ${account.id}, "${account.name}")${saved.configChanged ? '; its credentials in tailor.yml now reference .env' : ''}`;
    ctx.print(
      `connected as ${tokens.screenName ? `@${tokens.screenName}` : 'the signed-in user'}: ${what}; ` +
        `secrets in .env (${saved.variables.join(', ')}; mode 0600, git-ignored)\nnext: \`tailor check\`, then \`tailor activate <model>\``,
    );
  }
  return EXIT.ok;
}

/** A consumer credential: the option, else the environment (.env included), else asked on a terminal. */
async function credential(
  ctx: CommandContext,
  option: string | undefined,
  fromEnv: string | undefined,
  what: string,
  flag: string,
  variable: string,
  terminal: boolean,
  secret: boolean,
): Promise<string> {
  const given = option ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined);
  if (given !== undefined) return given;
  if (!terminal)
    throw commandLineError(`no ${what} for your X app: pass ${flag} or set ${variable}`, {
      option: flag,
      hint: 'it is on your app\'s "Keys and tokens" page in X\'s developer portal (https://developer.x.com)',
    });
  const stdin = ctx.io.stdin!;
  const value = secret
    ? await readSecret(stdin, ctx.io.stderr, `X app ${what} (not shown): `)
    : await readLine(stdin, ctx.io.stderr, `X app ${what}: `, { what, signal: ctx.signal });
  if (value === '') throw commandLineError(`no ${what} entered`, { option: flag });
  return value;
}

async function showAuthorizeUrl(
  ctx: CommandContext,
  url: string,
  browser: boolean,
  env: Readonly<Record<string, string | undefined>>,
): Promise<void> {
  // The URL carries only the request token, which is public (it is in the browser's address bar).
  ctx.note(`open this URL to authorize Tailor with your X account:\n  ${url}`);
  if (browser && !(await openBrowser(url, env)))
    ctx.note('(could not open a browser: open the URL above yourself)');
}
