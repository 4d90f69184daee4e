import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OAuthSigner } from '../../src/destinations/x-ads/oauth.js';
import { DEMO_CREDENTIALS, type RunningEmulator } from '../../src/emulator/index.js';
import {
  createE2eProject,
  DEMO_ACCOUNT_ID,
  type E2eProject,
  type JsonReport,
  normalizeHeld,
  startTestEmulator,
} from '../helpers/e2e.js';

/**
 * Ownership: two projects (two state schemas, e.g. staging beside prod) on one X account naming the
 * same audience. The first creates it and marks it as its own; the second is refused, until it takes
 * the audience over with --adopt; then the first is refused.
 */

let emulator: RunningEmulator;
let prod: E2eProject;
let staging: E2eProject;
const audienceName = `Shared ${Date.now().toString(36)}`;

const project = (rows: number, description: string, domain: string) =>
  createE2eProject(emulator, {
    setup: [
      'create table {schema}.people (person_id int primary key, email text)',
      `insert into {schema}.people select i, 'person' || i || '@${domain}.example.com' from generate_series(1, ${rows}) i`,
    ],
    models: {
      people: {
        sql: 'select person_id, email from {schema}.people',
        yml: `name: people\ndescription: ${description}\nprimary_key: person_id\n`,
      },
    },
    // The same activation id in both: the owner differs by state, not by name.
    activations: `  people_x:
    model: people
    destination: x
    audience: { name: '${audienceName}' }
    mappings: { email: email }
    schedule: manual
`,
  });

beforeAll(async () => {
  emulator = await startTestEmulator();
  prod = await project(30, 'Everyone in prod', 'prod');
  staging = await project(5, 'Everyone in staging', 'staging');
});

afterAll(async () => {
  await prod?.cleanup();
  await staging?.cleanup();
  await emulator?.close();
});

/** The audience's description as X serves it (a signed GET, as any client would read it). */
async function description(audienceId: string): Promise<string | null> {
  const baseUrl = `${emulator.url}/12/accounts/${DEMO_ACCOUNT_ID}/custom_audiences/${audienceId}`;
  const signed = new OAuthSigner(DEMO_CREDENTIALS).sign({
    method: 'GET',
    baseUrl,
    query: {},
    timestamp: Math.floor(Date.now() / 1000),
  });
  const response = await fetch(signed.url, { headers: { authorization: signed.authorization } });
  const body = (await response.json()) as { data: { description: string | null } };
  return body.data.description;
}

async function sync(target: E2eProject, ...args: string[]) {
  const { result, body } = await target.json<JsonReport>(['sync', 'people_x', ...args]);
  if (!body.activations)
    throw new Error(`no report (exit ${result.code}): ${result.stdout}\n${result.stderr}`);
  return {
    result,
    report: body.activations[0]! as JsonReport['activations'][number] & { error_kind?: string },
  };
}

describe('one audience, two projects', () => {
  let audienceId: string;
  let prodMark: string;

  it('the first project creates the audience with its owner mark beside the description', async () => {
    const { result, report } = await sync(prod);
    expect(result.code, result.stderr).toBe(0);
    expect(report.added).toBe(30);
    audienceId = report.audience_id!;
    const text = await description(audienceId);
    expect(text).toMatch(/^Everyone in prod\ntailor: [0-9a-f]{24}$/);
    prodMark = text!.split('\n')[1]!;
    // The mark names neither the state schema nor the activation.
    expect(text).not.toContain(prod.stateSchema);
    expect(text).not.toContain('people_x');
  });

  it('refuses the second project, which would feed the same audience, and X is untouched', async () => {
    const before = normalizeHeld(prod.held(audienceId));
    const { result, report } = await sync(staging);
    expect(result.code).toBe(1);
    expect(report.status).toBe('failed');
    expect(report.error_kind).toBe('audience_owned');
    expect(report.error).toMatch(/is fed by another activation or another Tailor project/);
    expect(report.error).toMatch(/--adopt/);
    expect(normalizeHeld(prod.held(audienceId))).toEqual(before);
    expect(await description(audienceId)).toBe(`Everyone in prod\n${prodMark}`);
    // Nothing bound: the next run decides afresh.
    expect(await staging.sql(`select * from "${staging.stateSchema}".bindings`)).toEqual([]);
  });

  it('lets the second project take the audience over with --adopt; then the first is refused', async () => {
    const adopted = await sync(staging, '--adopt');
    expect(adopted.result.code, adopted.result.stderr).toBe(0);
    expect(adopted.report.audience_id).toBe(audienceId);
    const text = await description(audienceId);
    expect(text).toMatch(/^Everyone in prod\ntailor: [0-9a-f]{24}$/); // the user's text is kept
    expect(text).not.toContain(prodMark);

    const again = await sync(staging);
    expect(again.result.code, again.result.stderr).toBe(0);

    const refused = await sync(prod);
    expect(refused.result.code).toBe(1);
    expect(refused.report.error_kind).toBe('audience_owned');
    expect(refused.report.error).toMatch(new RegExp(`audience ${audienceId} .* fed by another`));
    // Bound already: another audience in tailor.yml takes a state reset too.
    expect(refused.report.error).toMatch(/--adopt.*tailor state reset people_x/);
  });

  it('keeps a project its own audience after `tailor state reset`', async () => {
    const reset = await staging.cli(['state', 'reset', 'people_x']);
    expect(reset.code, reset.stderr).toBe(0);
    const { result, report } = await sync(staging);
    expect(result.code, result.stderr).toBe(0);
    expect(report.audience_id).toBe(audienceId);
  });
});
