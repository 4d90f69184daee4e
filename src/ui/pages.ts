import type { Project } from '../config/load-project.js';
import type { ResolvedActivation } from '../config/resolve-activation.js';
import type { RunRecord, RunRejections } from '../diff/types.js';
import type { AdAccount } from '../destinations/x-ads/x-oauth-flow.js';
import { accountRefusal } from '../destinations/x-ads/x-oauth-flow.js';
import type { ActivationStatusView } from '../scheduler/status-report.js';
import type { ActivationProposal } from '../sync/activate.js';
import type { SyncReport } from '../sync/types.js';
import {
  formatCount,
  formatDuration,
  formatInstant,
  type Html,
  html,
  jsonScript,
  type Part,
} from './html.js';
import type { ConnectDefaults, ConnectForm } from './connect.js';
import type { Job } from './jobs.js';

/**
 * The UI's pages, rendered on the server from the same views the CLI prints (`status`, `history`,
 * `plan`); the client script only draws the chart, streams progress and confirms. Nothing here
 * shows an identifier's value or a secret: runs hold counts, rejections hold member keys and reasons.
 */

export interface PageContext {
  csrf: string;
  project: Project | null;
  /** A problem loading the project (tailor.yml no longer valid), shown on every page. */
  problem?: string | undefined;
}

function layout(ctx: PageContext, title: string, body: Part, head: Part = ''): Html {
  const destinations = ctx.project ? Object.keys(ctx.project.config.destinations) : [];
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        ${head}
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${title} · Tailor</title>
        <link rel="stylesheet" href="/assets/app.css" />
        <script src="/assets/app.js" defer></script>
      </head>
      <body>
        <a class="skip" href="#main">Skip to content</a>
        <header class="top">
          <a class="brand" href="/">Tailor</a>
          <nav aria-label="Main">
            <ul>
              <li><a href="/">Activations</a></li>
              ${destinations.map((name) => html`<li><a href="/destinations/${encodeURIComponent(name)}">Destination ${name}</a></li>`)}
              <li><a href="/connect">Connect X</a></li>
            </ul>
          </nav>
        </header>
        <main id="main">
          ${
            ctx.problem
              ? html`<div class="problem" role="alert">
                  <h2>The project does not load</h2>
                  <pre>${ctx.problem}</pre>
                  <p>Fix tailor.yml (\`tailor check\` says where); this page updates on the next load.</p>
                </div>`
              : ''
          }
          ${body}
        </main>
      </body>
    </html>`;
}

function csrfField(ctx: PageContext): Html {
  return html`<input type="hidden" name="_csrf" value="${ctx.csrf}" />`;
}

/** A POST button: every change the UI makes goes through one of these. */
function postButton(
  ctx: PageContext,
  action: string,
  label: string,
  options: { className?: string; extra?: Part } = {},
): Html {
  return html`<form method="post" action="${action}" class="inline">
    ${csrfField(ctx)}${options.extra ?? ''}<button type="submit" class="${options.className ?? ''}">
      ${label}
    </button>
  </form>`;
}

const esc = encodeURIComponent;

function countsCells(counts: RunRecord['counts'] | undefined): Html {
  if (!counts) return html`<span class="muted">-</span>`;
  return html`<span class="counts"
    ><span title="added">+${formatCount(counts.added)}</span>
    <span title="removed">−${formatCount(counts.removed)}</span>
    <span title="changed">~${formatCount(counts.changed)}</span>
    <span title="invalid">!${formatCount(counts.invalid)}</span>
    <span title="rejected">×${formatCount(counts.rejected)}</span>
    <span title="suppressed (opted out)">⊘${formatCount(counts.suppressed)}</span></span
  >`;
}

function runDuration(run: RunRecord): string {
  return run.finishedAt ? formatDuration(run.finishedAt.getTime() - run.startedAt.getTime()) : 'running';
}

function statusBadge(status: string): Html {
  return html`<span class="badge badge-${status}">${status}</span>`;
}

function stateText(view: ActivationStatusView): Html {
  if (!view.enabled)
    return html`<span class="badge badge-paused">paused</span> <span class="muted">enabled: false</span>`;
  if (view.paused)
    return html`<span class="badge badge-held">held by the scheduler</span>
      <span class="reason">${view.pausedReason ?? 'no reason recorded'}</span>`;
  if (view.lastRun?.status === 'held')
    return html`<span class="badge badge-held">last run held</span>
      <span class="reason">${view.lastRun.error ?? ''}</span>`;
  return html`<span class="badge badge-active">active</span>`;
}

function audienceName(activation: ResolvedActivation): string {
  return 'name' in activation.audience ? activation.audience.name : `audience ${activation.audience.id}`;
}

function targetability(view: ActivationStatusView): Html {
  if (!view.audience) return html`<span class="muted">${view.audienceError ? 'unknown' : '-'}</span>`;
  if (view.audience.targetable === null) return html`<span class="muted">?</span>`;
  if (view.audience.targetable) return html`<span class="ok">targetable</span>`;
  const reasons = view.audience.reasonsNotTargetable;
  return html`<span class="warn">${reasons.length ? reasons.join(', ') : 'not targetable'}</span>`;
}

/** The share of what was sent (and of the model's rows) that X matched, with when X last sized it. */
function matchRateText(view: ActivationStatusView): Part {
  const rate = view.matchRate;
  if (!rate || rate.ofSent === null) return html`<span class="muted">${rate ? 'pending' : '-'}</span>`;
  const percent = (value: number | null): string => (value === null ? '-' : `${(value * 100).toFixed(1)}%`);
  return html`${percent(rate.ofSent)} of sent<br /><span class="muted"
      >${percent(rate.ofRows)} of
      rows${rate.processedAt ? html` · X sized it ${formatInstant(new Date(rate.processedAt))}` : ''}</span
    >`;
}

/** The activation table's columns, one entry each. */
const ACTIVATION_COLUMNS: readonly {
  header: string;
  cell: (v: ActivationStatusView, a: ResolvedActivation) => Part;
}[] = [
  { header: 'Activation', cell: (v) => html`<a href="/activations/${esc(v.id)}">${v.id}</a>` },
  { header: 'Model', cell: (_v, a) => a.model.name },
  { header: 'Destination', cell: (_v, a) => a.destinationName },
  {
    header: 'Audience',
    cell: (v, a) =>
      html`${audienceName(a)}<br /><span class="muted mono">${v.audienceId ?? 'not created yet'}</span>`,
  },
  {
    header: 'Schedule',
    cell: (v) =>
      html`${v.schedule}<br /><span class="muted"
          >next:
          ${v.nextRunReason === 'scheduled' || v.nextRunReason === 'backoff' ? formatInstant(v.nextRunAt) : v.nextRunReason}</span
        >`,
  },
  {
    header: 'Last run',
    cell: (v) =>
      v.lastRun
        ? html`${statusBadge(v.lastRun.status)} ${countsCells(v.lastRun.counts)}<br /><span class="muted"
              >${formatInstant(v.lastRun.finishedAt ?? v.lastRun.startedAt)} · ${runDuration(v.lastRun)}</span
            >`
        : html`<span class="muted">never</span>`,
  },
  {
    header: 'Audience size',
    cell: (v) =>
      v.audience
        ? v.audience.size === null
          ? html`<span class="muted">pending</span>`
          : formatCount(v.audience.size)
        : html`<span class="muted">-</span>`,
  },
  { header: 'Targetable', cell: (v) => targetability(v) },
  { header: 'Match rate', cell: (v) => matchRateText(v) },
  { header: 'State', cell: (v) => stateText(v) },
];

function destinationsOf(ctx: PageContext): string[] {
  return ctx.project ? Object.keys(ctx.project.config.destinations) : [];
}

export function indexPage(
  ctx: PageContext,
  rows: { view: ActivationStatusView; activation: ResolvedActivation }[],
  models: { name: string; description: string }[],
  jobs: Job[],
): Html {
  const running = jobs.filter((job) => job.state === 'running');
  return layout(
    ctx,
    'Activations',
    html`<h1>Activations</h1>
      ${
        running.length
          ? html`<section aria-label="Running now" class="running">
              <h2>Running now</h2>
              <ul>
                ${running.map((job) => html`<li><a href="/jobs/${job.id}">${job.kind.replace('_', ' ')} ${job.activationId}</a>: ${job.step}</li>`)}
              </ul>
            </section>`
          : ''
      }
      ${
        rows.length
          ? html`<div class="table-wrap">
                <table class="activations">
                  <caption class="sr-only">
                    Every activation with its last run and audience
                  </caption>
                  <thead>
                    <tr>
                      ${ACTIVATION_COLUMNS.map((c) => html`<th scope="col">${c.header}</th>`)}
                    </tr>
                  </thead>
                  <tbody>
                    ${rows.map(
                      ({ view, activation }) =>
                        html`<tr data-activation="${view.id}">
                          ${ACTIVATION_COLUMNS.map((c) => html`<td>${c.cell(view, activation)}</td>`)}
                        </tr>`,
                    )}
                  </tbody>
                </table>
              </div>
              <p class="muted">
                Last run counts: + added, − removed, ~ changed, ! invalid, × rejected, ⊘ suppressed.
              </p>
              ${rows.filter((r) => r.view.audienceError).map((r) => html`<p class="warn">${r.view.id}: ${r.view.audienceError}</p>`)}`
          : html`<p>No activations in tailor.yml yet.</p>`
      }
      <h2 id="models">Models not yet activated</h2>
      ${
        models.length
          ? html`<ul class="models">
              ${models.map(
                (m) =>
                  html`<li data-model="${m.name}">
                    ${
                      destinationsOf(ctx).length > 1
                        ? destinationsOf(ctx).map(
                            (d) =>
                              html`<a class="button" href="/models/${esc(m.name)}?destination=${esc(d)}"
                                >Activate ${m.name} on ${d}…</a
                              > `,
                          )
                        : html`<a class="button" href="/models/${esc(m.name)}">Activate ${m.name}…</a>`
                    }
                    <span class="muted">${m.description}</span>
                  </li>`,
              )}
            </ul>`
          : html`<p class="muted">Every model is activated.</p>`
      }`,
  );
}

function mappingTable(proposal: ActivationProposal): Html {
  return html`<table class="compact">
    <caption>
      Mapping from the model's columns
    </caption>
    <thead>
      <tr>
        <th scope="col">Column</th>
        <th scope="col">X identifier</th>
      </tr>
    </thead>
    <tbody>
      ${proposal.columns.map((column) => {
        const type = proposal.mappings[column];
        return html`<tr>
          <td class="mono">${column}</td>
          <td>${type ?? html`<span class="muted">not sent</span>`}</td>
        </tr>`;
      })}
    </tbody>
  </table>`;
}

function planSummary(report: SyncReport, title: string): Html {
  const c = report.counts;
  const reasons = Object.entries(c.invalidByReason);
  return html`<section class="plan" aria-label="${title}">
    <h2>${title}</h2>
    <dl class="numbers">${countItems(c, PLAN_COUNTS)}</dl>
    ${
      reasons.length
        ? html`<table class="compact">
            <caption>
              Invalid values by reason
            </caption>
            <thead>
              <tr>
                <th scope="col">Reason</th>
                <th scope="col">Count</th>
              </tr>
            </thead>
            <tbody>
              ${reasons.map(
                ([reason, n]) =>
                  html`<tr>
                    <td>${reason}</td>
                    <td>${formatCount(n)}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
        : ''
    }
    ${report.status === 'held' ? html`<p class="warn" role="status">The run would be held: ${report.error ?? ''}</p>` : ''}
    ${report.status === 'failed' ? html`<p class="error" role="alert">The plan failed: ${report.error ?? ''}</p>` : ''}
    ${report.warnings.map((w) => html`<p class="warn">${w}</p>`)}
  </section>`;
}

export function activatePage(
  ctx: PageContext,
  proposal: ActivationProposal,
  plan: SyncReport,
  description: string,
): Html {
  return layout(
    ctx,
    `Activate ${proposal.model}`,
    html`<h1>Activate ${proposal.model}</h1>
      <p class="muted">${description}</p>
      <p>
        One click writes this activation into tailor.yml (comments kept), creates the audience at
        ${proposal.destinationName} and runs the first sync.
      </p>
      <dl class="facts">
        <div>
          <dt>Activation id</dt>
          <dd class="mono">${proposal.id}</dd>
        </div>
        <div>
          <dt>Destination</dt>
          <dd>${proposal.destinationName}</dd>
        </div>
        <div>
          <dt>Audience name</dt>
          <dd data-field="audience-name">${proposal.audienceName}</dd>
        </div>
        <div>
          <dt>Audience description</dt>
          <dd>${proposal.audienceDescription || html`<span class="muted">none</span>`}</dd>
        </div>
        <div>
          <dt>Schedule</dt>
          <dd>${proposal.schedule}</dd>
        </div>
        <div>
          <dt>Mode</dt>
          <dd>${String(proposal.value['mode'] ?? 'mirror')}</dd>
        </div>
      </dl>
      ${mappingTable(proposal)} ${planSummary(plan, 'Plan of the first sync')}
      ${postButton(ctx, `/models/${esc(proposal.model)}/activate`, `Activate ${proposal.model}`, {
        className: 'primary',
        extra: html`<input type="hidden" name="destination" value="${proposal.destinationName}" />`,
      })}
      <p><a href="/">Back to activations</a></p>`,
  );
}

export function errorPage(
  ctx: PageContext,
  title: string,
  message: string,
  status = 400,
): { status: number; body: Html } {
  return {
    status,
    body: layout(
      ctx,
      title,
      html`<h1>${title}</h1>
        <div class="error" role="alert"><pre>${message}</pre></div>
        <p><a href="/">Back to activations</a></p>`,
    ),
  };
}

export interface ActivationDetail {
  activation: ResolvedActivation;
  view: ActivationStatusView;
  runs: RunRecord[];
  rejections: { run: RunRecord; list: RunRejections } | null;
  job: Job | undefined;
}

export function activationPage(ctx: PageContext, detail: ActivationDetail): Html {
  const { activation, view, runs } = detail;
  const id = activation.id;
  const chronological = [...runs].reverse().filter((run) => run.status !== 'running');
  const chart = {
    t: chronological.map((run) => Math.round((run.finishedAt ?? run.startedAt).getTime() / 1000)),
    series: {
      members: chronological.map((run) => run.counts.rows),
      added: chronological.map((run) => run.counts.added),
      removed: chronological.map((run) => run.counts.removed),
      changed: chronological.map((run) => run.counts.changed),
      invalid: chronological.map((run) => run.counts.invalid),
      rejected: chronological.map((run) => run.counts.rejected),
    },
  };
  const rejections = detail.rejections;
  return layout(
    ctx,
    id,
    html`<h1>${id}</h1>
      <dl class="facts">
        <div>
          <dt>Model</dt>
          <dd>${activation.model.name}</dd>
        </div>
        <div>
          <dt>Destination</dt>
          <dd>${activation.destinationName}</dd>
        </div>
        <div>
          <dt>Audience</dt>
          <dd>
            ${audienceName(activation)}
            <span class="muted mono">${view.audienceId ?? 'not created yet'}</span>
          </dd>
        </div>
        <div>
          <dt>Audience size</dt>
          <dd>
            ${!view.audience ? '-' : view.audience.size === null ? 'pending' : formatCount(view.audience.size)}
          </dd>
        </div>
        <div>
          <dt>Targetable</dt>
          <dd>${targetability(view)}</dd>
        </div>
        <div>
          <dt>Match rate</dt>
          <dd>${matchRateText(view)}</dd>
        </div>
        <div>
          <dt>Schedule</dt>
          <dd>${view.schedule} (${view.timezone})</dd>
        </div>
        <div>
          <dt>Mode</dt>
          <dd>${activation.mode}</dd>
        </div>
        <div>
          <dt>State</dt>
          <dd data-field="state">${stateText(view)}</dd>
        </div>
      </dl>
      ${detail.job ? html`<p role="status">A ${detail.job.kind.replace('_', ' ')} is running: <a href="/jobs/${detail.job.id}">follow it</a>.</p>` : ''}
      <div class="actions" role="group" aria-label="Actions">
        ${postButton(ctx, `/activations/${esc(id)}/run`, 'Run now', { className: 'primary' })}
        ${postButton(ctx, `/activations/${esc(id)}/plan`, 'Plan (dry run)')}
        ${view.enabled ? postButton(ctx, `/activations/${esc(id)}/pause`, 'Pause') : postButton(ctx, `/activations/${esc(id)}/resume`, 'Resume')}
        <a class="button danger" href="/activations/${esc(id)}/full-resync">Full resync…</a>
      </div>
      <h2>Runs</h2>
      ${
        chronological.length
          ? html`<figure class="chart">
                <div
                  id="runs-chart"
                  role="img"
                  aria-label="Members and counts of the last ${chronological.length} runs"
                ></div>
                <figcaption>
                  Segment rows and per-run counts over time (the table below has every number).
                </figcaption>
              </figure>
              ${jsonScript('runs-data', chart)}`
          : ''
      }
      ${
        runs.length
          ? html`<div class="table-wrap">
              <table class="runs">
                <caption class="sr-only">
                  Runs, newest first
                </caption>
                <thead>
                  <tr>
                    ${['Started', 'Status', 'Time', 'Rows', 'Added', 'Removed', 'Changed', 'Refreshed', 'Invalid', 'Rejected', 'Note'].map((h) => html`<th scope="col">${h}</th>`)}
                  </tr>
                </thead>
                <tbody>
                  ${runs.map(
                    (run) =>
                      html`<tr>
                        <td>${formatInstant(run.startedAt)}</td>
                        <td>${statusBadge(run.status)}</td>
                        <td>${runDuration(run)}</td>
                        ${[
                          run.counts.rows,
                          run.counts.added,
                          run.counts.removed,
                          run.counts.changed,
                          run.counts.refreshed,
                        ].map((n) => html`<td class="num">${formatCount(n)}</td>`)}
                        ${[run.counts.invalid, run.counts.rejected].map(
                          (n) =>
                            html`<td class="num">
                              ${
                                n > 0
                                  ? html`<a
                                      href="/activations/${esc(id)}?run=${esc(run.id)}#rejections"
                                      title="by reason, with member keys"
                                      >${formatCount(n)}</a
                                    >`
                                  : formatCount(n)
                              }
                            </td>`,
                        )}
                        <td>${run.error ?? ''}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>
            </div>`
          : html`<p class="muted">No runs yet.</p>`
      }
      <h2 id="rejections">Rejections and invalid values</h2>
      ${
        rejections
          ? html`<p>
                Run of ${formatInstant(rejections.run.startedAt)}. Values are never stored: a member key is
                the SHA-256 of the row's primary key as text, so
                <code>where encode(sha256(convert_to(key::text, 'UTF8')), 'hex') = '…'</code> finds the row in
                the warehouse (Postgres; docs/state.md has the others).
              </p>
              <table class="compact">
                <caption>
                  By reason
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Reason</th>
                    <th scope="col">Identifier</th>
                    <th scope="col">Count</th>
                  </tr>
                </thead>
                <tbody>
                  ${rejections.list.byReason.map(
                    (r) =>
                      html`<tr>
                        <td>${r.reason}</td>
                        <td>${r.identifierType ?? '-'}</td>
                        <td class="num">${formatCount(r.count)}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>
              ${
                rejections.list.sample.length
                  ? html`<table class="compact">
                      <caption>
                        Members (first ${rejections.list.sample.length})
                      </caption>
                      <thead>
                        <tr>
                          <th scope="col">Member key (SHA-256)</th>
                          <th scope="col">Identifier</th>
                          <th scope="col">Reason</th>
                        </tr>
                      </thead>
                      <tbody>
                        ${rejections.list.sample.map(
                          (r) =>
                            html`<tr>
                              <td class="mono">${r.memberKey ?? '(null key)'}</td>
                              <td>${r.identifierType ?? '-'}</td>
                              <td>${r.reason}</td>
                            </tr>`,
                        )}
                      </tbody>
                    </table>`
                  : ''
              }`
          : html`<p class="muted">No rejections or invalid values recorded.</p>`
      }`,
  );
}

export function fullResyncPage(ctx: PageContext, id: string): Html {
  return layout(
    ctx,
    `Full resync of ${id}`,
    html`<h1>Full resync of ${id}</h1>
      <p>
        A full resync re-sends every member of the segment to X and deletes what state holds beyond it. It
        sends far more than a normal run and counts against X's rate limits.
      </p>
      <form method="post" action="/activations/${esc(id)}/full-resync">
        ${csrfField(ctx)}
        <p>
          <label
            ><input type="checkbox" name="confirm" value="yes" required /> I understand: re-send the whole
            segment now</label
          >
        </p>
        <button type="submit" class="danger">Run the full resync</button>
        <a href="/activations/${esc(id)}">Cancel</a>
      </form>`,
  );
}

type Counts = SyncReport['counts'];
/** The counts that are numbers (not the invalid values by reason). */
type CountKey = { [K in keyof Counts]: Counts[K] extends number ? K : never }[keyof Counts];
type CountList = readonly (readonly [CountKey, string])[];

/** A run's counts, in the order the CLI prints them; `data-count` names each for the page's script. */
const REPORT_COUNTS: CountList = [
  ['rows', 'Rows'],
  ['added', 'Added'],
  ['removed', 'Removed'],
  ['changed', 'Changed'],
  ['refreshed', 'Refreshed'],
  ['invalid', 'Invalid'],
  ['rejected', 'Rejected'],
  ['suppressed', 'Suppressed'],
];

/** A plan's counts: what a sync would do now. */
const PLAN_COUNTS: CountList = [
  ['rows', 'Rows'],
  ['added', 'To add'],
  ['removed', 'To remove'],
  ['changed', 'To change'],
  ['refreshed', 'To refresh'],
  ['invalid', 'Invalid'],
  ['suppressed', 'Suppressed'],
];

function countItems(counts: SyncReport['counts'], list: CountList): Html[] {
  return list.map(
    ([key, label]) =>
      html`<div>
        <dt>${label}</dt>
        <dd data-count="${key}">${formatCount(counts[key])}</dd>
      </div>`,
  );
}

function reportNumbers(report: SyncReport): Html {
  const c = report.counts;
  return html`<dl class="numbers">
      <div>
        <dt>Status</dt>
        <dd data-field="status">${report.status}</dd>
      </div>
      ${countItems(c, REPORT_COUNTS)}
      <div>
        <dt>Time</dt>
        <dd>${formatDuration(report.durationMs)}</dd>
      </div>
    </dl>
    ${report.error ? html`<p class="${report.status === 'succeeded' ? 'muted' : 'warn'}" role="status">${report.error}</p>` : ''}
    ${report.warnings.map((w) => html`<p class="warn">${w}</p>`)}`;
}

const JOB_TITLES: Record<Job['kind'], string> = {
  activate: 'Activation',
  run: 'Run',
  plan: 'Plan',
  full_resync: 'Full resync',
};

export function jobPage(ctx: PageContext, job: Job): Html {
  const title = `${JOB_TITLES[job.kind]} of ${job.activationId}`;
  const p = job.progress;
  return layout(
    ctx,
    title,
    html`<h1>${title}</h1>
      <section class="job" data-job="${job.id}" data-state="${job.state}" aria-live="polite">
        ${
          job.state === 'running'
            ? html`<p><span data-field="step">${job.step}</span></p>
                <progress
                  id="job-progress"
                  max="${Math.max(1, p?.total ?? 1)}"
                  value="${p?.done ?? 0}"
                  aria-label="Members handled"
                ></progress>
                <p data-field="progress-text">
                  ${p ? `${formatCount(p.done)} of ${formatCount(p.total)} members (${p.phase})` : 'waiting for the warehouse'}
                </p>
                <noscript><p>Reload this page to see the result.</p></noscript>`
            : job.report
              ? html`<h2>${job.kind === 'plan' ? 'Plan' : 'Result'}</h2>
                  ${reportNumbers(job.report)}`
              : html`<div class="error" role="alert">
                  <pre>${job.error ?? 'the job ended without a result'}</pre>
                </div>`
        }
      </section>
      <p>
        <a href="/activations/${esc(job.activationId)}">Go to ${job.activationId}</a> ·
        <a href="/">All activations</a>
      </p>`,
  );
}

/** What the destination page says about its connection: just connected, and X's answer to a check. */
export interface ConnectionNote {
  connected?: 'created' | 'refreshed' | undefined;
  /** null: the check passed; a string: why it failed; undefined: not checked. */
  check?: string | null | undefined;
}

export function destinationPage(ctx: PageContext, name: string, note: ConnectionNote = {}): Html {
  const destination = ctx.project?.config.destinations[name];
  if (!destination)
    return errorPage(ctx, 'Unknown destination', `no destination "${name}" in tailor.yml`).body;
  const d = destination.defaults;
  return layout(
    ctx,
    `Destination ${name}`,
    html`<h1>Destination ${name}</h1>
      <dl class="facts">
        <div>
          <dt>Type</dt>
          <dd>${destination.type}</dd>
        </div>
        <div>
          <dt>Ad account</dt>
          <dd class="mono">${destination.account_id}</dd>
        </div>
        <div>
          <dt>API</dt>
          <dd class="mono">${destination.api_url}</dd>
        </div>
        <div>
          <dt>Credentials</dt>
          <dd>set in tailor.yml (never shown)</dd>
        </div>
      </dl>
      <section aria-labelledby="connect">
        <h2 id="connect">Connection</h2>
        ${
          note.connected
            ? html`<p class="ok" role="status">
                Connected:
                ${
                  note.connected === 'created'
                    ? html`destination <strong>${name}</strong> written into tailor.yml for ad account`
                    : html`fresh tokens for ad account`
                }
                <span class="mono">${destination.account_id}</span>; the tokens are in .env (mode 0600,
                git-ignored).
              </p>`
            : ''
        }
        ${
          note.check === null
            ? html`<p class="ok" role="status">
                Connection checked: X accepts these credentials for this ad account.
              </p>`
            : note.check !== undefined
              ? html`<div class="error" role="alert"><pre>Connection check failed: ${note.check}</pre></div>`
              : ''
        }
        <p>
          ${note.check === undefined ? html`<a href="/destinations/${esc(name)}?check=1">Check the connection</a> · ` : ''}
          <a href="/connect?destination=${esc(name)}">Connect again</a> (signs in to X anew: fresh tokens, the
          same ad account, as <code>tailor connect ${name}</code>)
        </p>
      </section>
      <h2>Default activation settings</h2>
      <p>
        What <strong>Activate</strong> uses. They live in tailor.yml under
        <code>destinations.${name}.defaults</code>; edit them there (read-only here).
      </p>
      <dl class="facts">
        <div>
          <dt>Audience name</dt>
          <dd class="mono">${d.audience_name}</dd>
        </div>
        <div>
          <dt>Audience description</dt>
          <dd class="mono">${d.audience_description}</dd>
        </div>
        <div>
          <dt>Schedule</dt>
          <dd>${d.schedule}</dd>
        </div>
        <div>
          <dt>Mode</dt>
          <dd>${d.mode}</dd>
        </div>
        <div>
          <dt>Phone default region</dt>
          <dd>${d.phone_default_region}</dd>
        </div>
      </dl>
      <table class="compact">
        <caption>
          Mappings (applied where the model has the column)
        </caption>
        <thead>
          <tr>
            <th scope="col">Column</th>
            <th scope="col">X identifier</th>
          </tr>
        </thead>
        <tbody>
          ${Object.entries(d.mappings).map(
            ([column, type]) =>
              html`<tr>
                <td class="mono">${column}</td>
                <td>${type}</td>
              </tr>`,
          )}
        </tbody>
      </table>`,
  );
}

/** The Connect X form: the X app's keys (never shown back), the destination name, advanced URLs. */
export function connectPage(
  ctx: PageContext,
  defaults: ConnectDefaults,
  form: ConnectForm = {},
  problem?: string,
): { status: number; body: Html } {
  const existing = defaults.existing;
  const keyNote = (present: boolean, variable: string): Part =>
    present
      ? html`<span class="muted" id="${variable}-note"
          >${variable} is already set (environment or .env): leave this blank to use it</span
        >`
      : '';
  return {
    status: problem ? 422 : 200,
    body: layout(
      ctx,
      'Connect X',
      html`<h1>Connect X</h1>
        <p>
          Sign in to X with your X app (OAuth 1.0a, as <code>tailor connect</code> does): X asks you to
          authorize the app, then you choose the ad account. The destination is written into tailor.yml
          (comments kept) with <code>\${VAR}</code> references, and the four secrets into .env (mode 0600,
          git-ignored). Your app must be approved for the Ads API and list this page's callback URL,
          <code>/connect/callback</code> on this UI's address, among its callback URLs.
        </p>
        ${problem ? html`<div class="error" role="alert"><pre>${problem}</pre></div>` : ''}
        ${
          existing
            ? html`<p role="status">
                Destination <strong>${defaults.destination}</strong> exists (ad account
                <span class="mono">${existing.accountId}</span>): connecting again refreshes its tokens only.
              </p>`
            : ''
        }
        <form method="post" action="/connect" class="stack">
          ${csrfField(ctx)}
          <p>
            <label for="consumer_key">API key (consumer key) of your X app</label>
            <input
              id="consumer_key"
              name="consumer_key"
              autocomplete="off"
              spellcheck="false"
              ${defaults.hasConsumerKey ? html`aria-describedby="${defaults.vars.consumer_key}-note"` : ''}
            />
            ${keyNote(defaults.hasConsumerKey, defaults.vars.consumer_key)}
          </p>
          <p>
            <label for="consumer_secret">API key secret (consumer secret)</label>
            <input
              id="consumer_secret"
              name="consumer_secret"
              type="password"
              autocomplete="off"
              ${defaults.hasConsumerSecret ? html`aria-describedby="${defaults.vars.consumer_secret}-note"` : ''}
            />
            ${keyNote(defaults.hasConsumerSecret, defaults.vars.consumer_secret)}
          </p>
          <p>
            <label for="destination">Destination name</label>
            <input
              id="destination"
              name="destination"
              value="${form.destination ?? defaults.destination}"
              pattern="[a-z][a-z0-9_]*"
              required
            />
          </p>
          <details>
            <summary>Advanced</summary>
            <p>
              <label for="api_url"
                >Ads API URL (default https://ads-api.x.com; a local emulator's
                http://127.0.0.1:&lt;port&gt;)</label
              >
              <input
                id="api_url"
                name="api_url"
                value="${form.apiUrl ?? ''}"
                placeholder="https://ads-api.x.com"
              />
            </p>
            <p>
              <label for="oauth_url"
                >Sign-in URL (default https://api.x.com, or the API URL of a local emulator)</label
              >
              <input
                id="oauth_url"
                name="oauth_url"
                value="${form.oauthUrl ?? ''}"
                placeholder="https://api.x.com"
              />
            </p>
          </details>
          <p><button type="submit">Sign in with X</button></p>
        </form>`,
    ),
  };
}

/** After the POST: the browser goes on to X's authorize page (a page, not a redirect, so the form's CSP holds). */
export function toXPage(ctx: PageContext, authorizeUrl: string): Html {
  // The URL carries only X's public request token (X shows it in the address bar itself).
  return layout(
    ctx,
    'Signing in to X',
    html`<h1>Signing in to X</h1>
      <p role="status">
        Taking you to X to authorize the app… If nothing happens,
        <a id="authorize" href="${authorizeUrl}">continue to X</a>.
      </p>`,
    html`<meta http-equiv="refresh" content="0;url=${authorizeUrl}" />`,
  );
}

/** The ad accounts the signed-in user reaches; only approved ones can be chosen. */
export function accountPickerPage(
  ctx: PageContext,
  picker: { handle: string; destination: string; who: string; accounts: readonly AdAccount[] },
  problem?: string,
): { status: number; body: Html } {
  const firstOk = picker.accounts.find((a) => accountRefusal(a) === undefined);
  return {
    status: problem ? 422 : 200,
    body: layout(
      ctx,
      'Choose the ad account',
      html`<h1>Choose the ad account</h1>
        <p role="status">
          Signed in as ${picker.who}. Choose the ad account destination
          <strong>${picker.destination}</strong> syncs audiences to.
        </p>
        ${problem ? html`<div class="error" role="alert"><pre>${problem}</pre></div>` : ''}
        <form method="post" action="/connect/account">
          ${csrfField(ctx)}
          <input type="hidden" name="handle" value="${picker.handle}" />
          <fieldset>
            <legend>Ad accounts ${picker.who} can reach</legend>
            <table class="compact">
              <thead>
                <tr>
                  <th scope="col">Account</th>
                  <th scope="col">Id</th>
                  <th scope="col">Approval status</th>
                </tr>
              </thead>
              <tbody>
                ${picker.accounts.map((account) => {
                  const refusal = accountRefusal(account);
                  const id = `account-${account.id}`;
                  return html`<tr>
                    <td>
                      <input
                        type="radio"
                        name="account"
                        id="${id}"
                        value="${account.id}"
                        ${refusal ? html`disabled aria-describedby="${id}-why"` : ''}
                        ${account === firstOk ? html`checked` : ''}
                      />
                      <label for="${id}">${account.name}</label>
                      ${refusal ? html`<br /><span class="warn" id="${id}-why">${refusal}</span>` : ''}
                    </td>
                    <td class="mono">${account.id}</td>
                    <td>${account.approvalStatus ?? 'no approval status'}</td>
                  </tr>`;
                })}
              </tbody>
            </table>
          </fieldset>
          <p><button type="submit">Use this account</button></p>
        </form>`,
    ),
  };
}
