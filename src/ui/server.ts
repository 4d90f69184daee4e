import type { AddressInfo } from 'node:net';
import formbody from '@fastify/formbody';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Project } from '../config/load-project.js';
import { resolveActivation, resolveActivations } from '../config/resolve-activation.js';
import { addActivation, editConfig, setActivationEnabled } from '../config/write-config.js';
import { ConfigError, errorMessage } from '../errors.js';
import { describeActivations } from '../scheduler/status-report.js';
import { pickDestination, proposeActivation, unactivatedModels, withProposal } from '../sync/activate.js';
import { syncMany } from '../sync/sync-many.js';
import type { SyncEngine, SyncOptions, SyncProgress, SyncReport } from '../sync/types.js';
import { loadAssets } from './assets.js';
import { type ConnectForm, ConnectFlow } from './connect.js';
import { EngineHolder } from './engines.js';
import { escapeHtml, type Html } from './html.js';
import { type JobKind, Jobs } from './jobs.js';
import {
  accountPickerPage,
  activatePage,
  activationPage,
  type ConnectionNote,
  connectPage,
  destinationPage,
  errorPage,
  fullResyncPage,
  indexPage,
  jobPage,
  type PageContext,
  toXPage,
} from './pages.js';
import { hostAllowed, isLoopback, newSecret, sameOrigin, secretsEqual } from './security.js';

export interface UiServerOptions {
  /** Address to bind: loopback by default; any other address requires `token`. */
  host: string;
  port: number;
  /** Required off loopback (TAILOR_UI_TOKEN): asked of every request, compared in constant time. */
  token?: string | undefined;
  projectDir: string;
  /** Loads the project as it is on disk now (the CLI's loader: env, secrets, embedded X). */
  load: () => Promise<Project>;
  openEngine: (project: Project) => Promise<SyncEngine>;
  logger: Logger;
  /** Replaces secret values in every answer (the CLI's scrubber), a second guard behind the pages. */
  scrub?: (text: string) => string;
  /** The environment as it is now (process over the project's `.env`): Connect X looks for the app's keys there. */
  env?: () => Readonly<Record<string, string | undefined>>;
  /** tailor.yml was written by the UI (the daemon reloads its schedule). */
  onConfigWritten?: () => void;
}

export interface UiServer extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  /** Stops serving; `abort` stops running jobs (their runs record `interrupted`), else waits for them. */
  close(options?: { abort?: boolean }): Promise<void>;
}

const TOKEN_COOKIE = 'tailor_ui_token';
const RUNS_SHOWN = 50;
const REJECTIONS_SHOWN = 200;

function cookie(request: FastifyRequest, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return decodeURIComponent(rest.join('='));
  }
  return undefined;
}

function send(reply: FastifyReply, page: Html, status = 200): FastifyReply {
  return reply.code(status).type('text/html; charset=utf-8').send(page.text);
}

/**
 * `tailor ui`'s server (and `tailor schedule --ui`'s): a thin face over the services the CLI uses
 * (proposeActivation, editConfig, syncMany, describeActivations), never a second implementation.
 */
export async function startUiServer(options: UiServerOptions): Promise<UiServer> {
  if (!isLoopback(options.host) && !options.token)
    throw new ConfigError(`the web UI listens on ${options.host}, off loopback, so it needs a token`, {
      hint: 'set TAILOR_UI_TOKEN to a long random value, or keep the default --host 127.0.0.1',
    });
  const logger = options.logger;
  const csrf = newSecret();
  const jobs = new Jobs();
  const engines = new EngineHolder({
    dir: options.projectDir,
    load: options.load,
    open: options.openEngine,
    logger,
  });
  const scrub = options.scrub ?? ((text: string) => text);
  let port = options.port;
  const connect = new ConnectFlow({
    projectDir: options.projectDir,
    env: options.env ?? (() => ({})),
    validate: options.load,
    logger: logger.child({ component: 'connect' }),
  });

  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 });
  await app.register(formbody);

  // Every answer: no framing, no sniffing, scripts and styles from this server only.
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header(
      'content-security-policy',
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'DENY');
    reply.header('referrer-policy', 'same-origin');
    reply.header('cache-control', 'no-store');
    return typeof payload === 'string' ? scrub(payload) : payload;
  });

  app.addHook('onRequest', async (request, reply) => {
    // The route pattern only: a query string may carry the token.
    const route = request.routeOptions.url ?? 'unknown';
    if (!hostAllowed(request.headers.host, options.host, port)) {
      logger.warn({ method: request.method, route }, 'refused a request whose Host is not this server');
      return reply.code(421).type('text/plain').send('this server answers only to its own address\n');
    }
    if (options.token) {
      const header = request.headers.authorization;
      const given =
        (header?.startsWith('Bearer ') ? header.slice(7) : undefined) ?? cookie(request, TOKEN_COOKIE);
      const query = (request.query as Record<string, unknown> | undefined)?.['token'];
      if (request.method === 'GET' && typeof query === 'string' && secretsEqual(query, options.token)) {
        // A link with ?token=: remember it in a cookie only this site sends, and drop it from the URL.
        const path = request.url.split('?')[0] ?? '/';
        return reply
          .header(
            'set-cookie',
            `${TOKEN_COOKIE}=${encodeURIComponent(options.token)}; HttpOnly; SameSite=Strict; Path=/`,
          )
          .redirect(path, 303);
      }
      const hopped = (request.query as Record<string, unknown> | undefined)?.['hop'] !== undefined;
      if (given === undefined && request.method === 'GET' && route === '/connect/callback' && !hopped) {
        // X's redirect is a cross-site navigation, which does not carry the SameSite=Strict token
        // cookie; a same-site reload of the same URL does. Nothing is done before the token is seen,
        // and `hop` makes it once: a browser without the cookie then gets the 401 below.
        const again = `${request.url}${request.url.includes('?') ? '&' : '?'}hop=1`;
        return reply
          .code(200)
          .type('text/html; charset=utf-8')
          .send(
            `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${escapeHtml(again)}"><title>Back from X</title></head><body><p>Back from X: <a href="${escapeHtml(again)}">continue to Tailor</a>.</p></body></html>`,
          );
      }
      if (given === undefined || !secretsEqual(given, options.token)) {
        logger.warn({ method: request.method, route }, 'refused a request without the UI token');
        return reply
          .code(401)
          .type('text/plain')
          .send('this UI needs its token: open it as <url>?token=<TAILOR_UI_TOKEN>\n');
      }
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      const h = request.headers;
      const origin = sameOrigin({
        host: h.host,
        origin: h.origin,
        referer: h.referer,
        'sec-fetch-site': h['sec-fetch-site'] as string | undefined,
      });
      if (!origin) {
        logger.warn({ method: request.method, route }, 'refused a cross-origin change');
        return reply.code(403).type('text/plain').send('refused: the change does not come from this UI\n');
      }
    }
  });

  /** Checks the CSRF token of a form POST (after the same-origin check of onRequest). */
  app.addHook('preHandler', async (request, reply) => {
    if (request.method !== 'POST') return;
    const body = (request.body ?? {}) as Record<string, unknown>;
    const token = typeof body['_csrf'] === 'string' ? body['_csrf'] : '';
    if (!secretsEqual(token, csrf)) {
      logger.warn({ route: request.routeOptions.url }, 'refused a change without the page token');
      return reply
        .code(403)
        .type('text/plain')
        .send('refused: the form is stale or forged; reload the page\n');
    }
  });

  /** The page context, with the project as it is on disk, or the reason it does not load. */
  const withEngine = async <T>(
    fn: (engine: SyncEngine, ctx: PageContext) => Promise<T>,
    fallback: (ctx: PageContext) => T,
  ): Promise<T> => {
    try {
      return await engines.use((engine) => fn(engine, { csrf, project: engine.project }));
    } catch (error) {
      if (error instanceof ConfigError) return fallback({ csrf, project: null, problem: error.message });
      throw error;
    }
  };

  const startJob = (kind: JobKind, activationId: string, syncOptions: Partial<SyncOptions>) =>
    jobs.start(kind, activationId, async (hooks) => {
      hooks.step(kind === 'plan' ? 'planning (nothing is sent)' : 'syncing');
      return runOne(activationId, syncOptions, hooks);
    });

  const runOne = (
    activationId: string,
    syncOptions: Partial<SyncOptions>,
    hooks: { progress(p: SyncProgress): void; signal: AbortSignal },
  ): Promise<SyncReport> =>
    engines.use(async (engine) => {
      const [report] = await syncMany(engine, [activationId], {
        fullResync: false,
        recreate: false,
        force: false,
        dryRun: false,
        waitForLock: false,
        ...syncOptions,
        signal: hooks.signal,
        onProgress: (p) => hooks.progress(p),
      });
      if (engine.project.config.activations[activationId]?.enabled === false && !syncOptions.dryRun)
        report!.warnings.push('this activation is paused (enabled: false); it ran because you asked');
      return report!;
    });

  const configWritten = () => {
    engines.invalidate();
    options.onConfigWritten?.();
  };

  const refuse = (reply: FastifyReply, ctx: PageContext, title: string, error: unknown, status = 422) => {
    const page = errorPage(ctx, title, errorMessage(error), status);
    return send(reply, page.body, page.status);
  };

  app.get('/', async (_request, reply) => {
    const page = await withEngine(
      async (engine, ctx) => {
        const activations = resolveActivations(engine.project);
        const views = await describeActivations(engine, activations, {
          signal: jobs.signal,
          audienceTimeoutMs: 5_000,
        });
        const models = unactivatedModels(engine.project).map((name) => ({
          name,
          description: engine.project.models.get(name)?.description ?? '',
        }));
        return indexPage(
          ctx,
          views.map((view, i) => ({ view, activation: activations[i]! })),
          models,
          jobs.list(),
        );
      },
      (ctx) => indexPage(ctx, [], [], jobs.list()),
    );
    return send(reply, page);
  });

  app.get<{ Params: { name: string }; Querystring: { destination?: string } }>(
    '/models/:name',
    async (request, reply) => {
      const page = await withEngine(
        async (engine, ctx) => {
          try {
            const project = engine.project;
            const destination = pickDestination(project, request.query.destination);
            const proposal = await proposeActivation(project, engine, request.params.name, destination);
            // The plan of the activation-to-be: the same dry run as `tailor plan`, on an engine that
            // knows it, with nothing written or created.
            const planned = withProposal(project, proposal);
            let plan: SyncReport;
            {
              await using planEngine = await options.openEngine(planned);
              [plan] = (await syncMany(planEngine, [proposal.id], {
                fullResync: false,
                recreate: false,
                force: false,
                dryRun: true,
                waitForLock: false,
                signal: jobs.signal,
              })) as [SyncReport];
            }
            const description = project.models.get(proposal.model)?.description ?? '';
            return { status: 200, body: activatePage(ctx, proposal, plan, description) };
          } catch (error) {
            if (error instanceof ConfigError)
              return errorPage(ctx, `Cannot activate ${request.params.name}`, error.message);
            throw error;
          }
        },
        (ctx) => errorPage(ctx, 'The project does not load', ctx.problem ?? ''),
      );
      return send(reply, page.body, page.status);
    },
  );

  app.post<{ Params: { name: string }; Body: { destination?: string } }>(
    '/models/:name/activate',
    async (request, reply) => {
      const ctx: PageContext = { csrf, project: null };
      let proposal;
      try {
        proposal = await engines.use(async (engine) => {
          ctx.project = engine.project;
          const destination = pickDestination(engine.project, request.body.destination);
          return proposeActivation(engine.project, engine, request.params.name, destination);
        });
      } catch (error) {
        return refuse(reply, ctx, `Cannot activate ${request.params.name}`, error);
      }
      const { id, value } = proposal;
      // A second click while the first activation is still being written and synced follows it.
      const already = jobs.running(id);
      if (already) return reply.redirect(`/jobs/${already.id}`, 303);
      const job = jobs.start('activate', id, async (hooks) => {
        hooks.step('writing the activation into tailor.yml');
        // As `tailor activate` does: an edit that would break tailor.yml is undone and refused.
        await editConfig(
          options.projectDir + '/tailor.yml',
          (doc) => addActivation(doc, id, value),
          options.load,
        );
        configWritten();
        logger.info({ activation: id }, 'activation written into tailor.yml from the web UI');
        hooks.step('creating the audience and running the first sync');
        return runOne(id, {}, hooks);
      });
      return reply.redirect(`/jobs/${job.id}`, 303);
    },
  );

  app.get<{ Params: { id: string }; Querystring: { run?: string } }>(
    '/activations/:id',
    async (request, reply) => {
      const page = await withEngine(
        async (engine, ctx) => {
          const id = request.params.id;
          if (!(id in engine.project.config.activations))
            return errorPage(ctx, 'Unknown activation', `no activation "${id}" in tailor.yml`, 404);
          const activation = resolveActivation(engine.project, id);
          const [[view], runs] = await Promise.all([
            describeActivations(engine, [activation], { signal: jobs.signal, audienceTimeoutMs: 5_000 }),
            engine.state().listRuns({ activationId: id, limit: RUNS_SHOWN }),
          ]);
          const chosen =
            runs.find((run) => run.id === request.query.run) ??
            runs.find((run) => run.counts.rejected + run.counts.invalid > 0);
          const rejections = chosen
            ? { run: chosen, list: await engine.state().listRejections(chosen.id, REJECTIONS_SHOWN) }
            : null;
          return {
            status: 200,
            body: activationPage(ctx, {
              activation,
              view: view!,
              runs,
              rejections: rejections && rejections.list.byReason.length > 0 ? rejections : null,
              job: jobs.running(id),
            }),
          };
        },
        (ctx) => errorPage(ctx, 'The project does not load', ctx.problem ?? ''),
      );
      return send(reply, page.body, page.status);
    },
  );

  const knownActivation = async (id: string): Promise<boolean> =>
    engines.use(async (engine) => id in engine.project.config.activations).catch(() => false);

  const jobRoute = (path: string, kind: JobKind, syncOptions: Partial<SyncOptions>) =>
    app.post<{ Params: { id: string }; Body: { confirm?: string } }>(path, async (request, reply) => {
      const id = request.params.id;
      const ctx: PageContext = { csrf, project: null };
      if (!(await knownActivation(id)))
        return refuse(reply, ctx, 'Unknown activation', `no activation "${id}"`, 404);
      if (kind === 'full_resync' && request.body.confirm !== 'yes')
        return refuse(reply, ctx, 'Not confirmed', 'a full resync needs its confirmation box ticked', 400);
      const running = jobs.running(id);
      if (running) return reply.redirect(`/jobs/${running.id}`, 303);
      const job = startJob(kind, id, syncOptions);
      return reply.redirect(`/jobs/${job.id}`, 303);
    });
  jobRoute('/activations/:id/run', 'run', {});
  jobRoute('/activations/:id/plan', 'plan', { dryRun: true });
  jobRoute('/activations/:id/full-resync', 'full_resync', { fullResync: true });

  app.get<{ Params: { id: string } }>('/activations/:id/full-resync', async (request, reply) => {
    const page = await withEngine(
      async (engine, ctx) => {
        if (!(request.params.id in engine.project.config.activations))
          return errorPage(ctx, 'Unknown activation', `no activation "${request.params.id}"`, 404);
        return { status: 200, body: fullResyncPage(ctx, request.params.id) };
      },
      (ctx) => errorPage(ctx, 'The project does not load', ctx.problem ?? ''),
    );
    return send(reply, page.body, page.status);
  });

  const enabledRoute = (path: string, enabled: boolean) =>
    app.post<{ Params: { id: string } }>(path, async (request, reply) => {
      const id = request.params.id;
      const ctx: PageContext = { csrf, project: null };
      try {
        await editConfig(
          `${options.projectDir}/tailor.yml`,
          (doc) => setActivationEnabled(doc, id, enabled),
          options.load,
        );
      } catch (error) {
        return refuse(reply, ctx, `Cannot ${enabled ? 'resume' : 'pause'} ${id}`, error);
      }
      configWritten();
      logger.info(
        { activation: id, enabled },
        enabled ? 'activation resumed from the web UI' : 'activation paused from the web UI',
      );
      return reply.redirect(`/activations/${encodeURIComponent(id)}`, 303);
    });
  enabledRoute('/activations/:id/pause', false);
  enabledRoute('/activations/:id/resume', true);

  app.get<{ Params: { id: string } }>('/jobs/:id', async (request, reply) => {
    const job = jobs.get(request.params.id);
    const project = await engines.use(async (engine) => engine.project).catch(() => null);
    const ctx: PageContext = { csrf, project };
    if (!job) {
      const page = errorPage(ctx, 'Unknown job', 'this job is not known (the UI was restarted?)', 404);
      return send(reply, page.body, page.status);
    }
    return send(reply, jobPage(ctx, job));
  });

  app.get<{ Params: { id: string } }>('/jobs/:id/events', async (request, reply) => {
    const job = jobs.get(request.params.id);
    if (!job) return reply.code(404).type('text/plain').send('unknown job\n');
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      connection: 'keep-alive',
    });
    const write = (type: string) =>
      raw.write(
        scrub(
          `event: ${type}\ndata: ${JSON.stringify({ state: job.state, step: job.step, progress: job.progress, status: job.report?.status ?? null })}\n\n`,
        ),
      );
    if (job.state === 'finished') {
      write('done');
      raw.end();
      return;
    }
    write('progress');
    // A comment line now and then keeps proxies from closing a quiet stream during a long snapshot.
    const heartbeat = setInterval(() => raw.write(': keep-alive\n\n'), 15_000);
    const unsubscribe = jobs.subscribe(job.id, (event) => {
      write(event.type);
      if (event.type === 'done') {
        clearInterval(heartbeat);
        raw.end();
      }
    });
    request.raw.on('close', () => {
      clearInterval(heartbeat);
      unsubscribe();
    });
  });

  const projectOrNull = () => engines.use(async (engine) => engine.project).catch(() => null);

  app.get<{ Querystring: { destination?: string } }>('/connect', async (request, reply) => {
    const ctx: PageContext = { csrf, project: await projectOrNull() };
    const page = connectPage(ctx, await connect.defaults(request.query.destination));
    return send(reply, page.body, page.status);
  });

  app.post<{
    Body: {
      consumer_key?: string;
      consumer_secret?: string;
      destination?: string;
      api_url?: string;
      oauth_url?: string;
    };
  }>('/connect', async (request, reply) => {
    const body = request.body;
    // What the form shows again on a refusal: never the keys.
    const form: ConnectForm = {
      destination: body.destination,
      apiUrl: body.api_url,
      oauthUrl: body.oauth_url,
    };
    const ctx: PageContext = { csrf, project: await projectOrNull() };
    try {
      const authorizeUrl = await connect.start(
        { ...form, consumerKey: body.consumer_key, consumerSecret: body.consumer_secret },
        // X sends the browser back to this UI, at the address it was reached by (Host was checked).
        `http://${request.headers.host}/connect/callback`,
        jobs.signal,
      );
      return send(reply, toXPage(ctx, authorizeUrl));
    } catch (error) {
      const page = connectPage(ctx, await connect.defaults(body.destination), form, errorMessage(error));
      return send(reply, page.body, page.status);
    }
  });

  app.get<{ Querystring: { oauth_token?: string; oauth_verifier?: string; denied?: string } }>(
    '/connect/callback',
    async (request, reply) => {
      try {
        const outcome = await connect.callback(request.query, jobs.signal);
        if (outcome.kind === 'choose') {
          const page = accountPickerPage({ csrf, project: await projectOrNull() }, outcome);
          return send(reply, page.body, page.status);
        }
        configWritten();
        return reply.redirect(
          `/destinations/${encodeURIComponent(outcome.destination)}?connected=${outcome.created ? 'created' : 'refreshed'}`,
          303,
        );
      } catch (error) {
        const ctx: PageContext = { csrf, project: await projectOrNull() };
        return refuse(reply, ctx, 'Not connected', error);
      }
    },
  );

  app.post<{ Body: { handle?: string; account?: string } }>('/connect/account', async (request, reply) => {
    const handle = request.body.handle ?? '';
    try {
      const outcome = await connect.choose(handle, request.body.account ?? '');
      configWritten();
      return reply.redirect(
        `/destinations/${encodeURIComponent(outcome.destination)}?connected=${outcome.kind === 'connected' && outcome.created ? 'created' : 'refreshed'}`,
        303,
      );
    } catch (error) {
      const ctx: PageContext = { csrf, project: await projectOrNull() };
      const picker = connect.picker(handle);
      if (picker) {
        const page = accountPickerPage(ctx, picker, errorMessage(error));
        return send(reply, page.body, page.status);
      }
      return refuse(reply, ctx, 'Not connected', error);
    }
  });

  app.get<{ Params: { name: string }; Querystring: { connected?: string; check?: string } }>(
    '/destinations/:name',
    async (request, reply) => {
      const page = await withEngine(
        async (engine, ctx) => {
          const name = request.params.name;
          const { connected, check } = request.query;
          const note: ConnectionNote = {
            connected: connected === 'created' || connected === 'refreshed' ? connected : undefined,
          };
          // Just connected (or asked): the same check as `tailor check` makes of the destination.
          if ((note.connected || check === '1') && name in engine.project.config.destinations) {
            note.check = await engine
              .destination(name)
              .check(jobs.signal)
              .then(
                () => null,
                (error: unknown) => errorMessage(error),
              );
          }
          return destinationPage(ctx, name, note);
        },
        (ctx) => errorPage(ctx, 'The project does not load', ctx.problem ?? '').body,
      );
      return send(reply, page);
    },
  );

  app.get('/assets/app.js', async (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').send((await loadAssets()).js),
  );
  app.get('/assets/app.css', async (_request, reply) =>
    reply.type('text/css; charset=utf-8').send((await loadAssets()).css),
  );

  app.setNotFoundHandler(async (_request, reply) => reply.code(404).type('text/plain').send('not found\n'));
  app.setErrorHandler(async (error, request, reply) => {
    logger.error(
      { route: request.routeOptions.url, err: { message: errorMessage(error) } },
      'UI request failed',
    );
    const page = errorPage({ csrf, project: null }, 'Something went wrong', errorMessage(error), 500);
    return send(reply, page.body, page.status);
  });

  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address() as AddressInfo;
  port = address.port;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${port}`;
  let closed: Promise<void> | undefined;
  const close = (closeOptions: { abort?: boolean } = {}) =>
    (closed ??= (async () => {
      if (closeOptions.abort) jobs.abort();
      await jobs.settled();
      await app.close();
      await engines.close();
    })());
  return { url, port, close, [Symbol.asyncDispose]: () => close({ abort: true }) };
}
