import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { XIdentifierType } from '../../src/destinations/x-ads/identifier-types.js';
import { prng } from '../../src/demo/sample-data.js';
import type { RunningEmulator } from '../../src/emulator/index.js';
import {
  createE2eProject,
  type E2eProject,
  type JsonReport,
  normalizeHeld,
  startTestEmulator,
} from '../helpers/e2e.js';

/**
 * The membership invariant end to end: the CLI as a subprocess, a Postgres warehouse, the emulator over
 * HTTP. After every run the audience holds exactly the hashes of the segment's valid rows.
 */

const MAPPINGS: Record<string, XIdentifierType> = { email: 'email', phone: 'phone_number', handle: 'handle' };

interface Row {
  id: number | null;
  email: string | null;
  phone: string | null;
  handle: string | null;
  active?: boolean;
}

const INITIAL: Row[] = [
  // 1 and 2 share an address (a family inbox): removing 1 must not remove it.
  { id: 1, email: 'pat.family@example.com', phone: '+1 415 555 2671', handle: '@pat' },
  { id: 2, email: 'Pat.Family@example.com ', phone: null, handle: 'sam_family' },
  { id: 3, email: 'changes.soon@example.com', phone: '(212) 555-0147', handle: null },
  { id: 4, email: 'case.only@example.com', phone: null, handle: null },
  { id: 5, email: 'not-an-email', phone: '+44 7911 123456', handle: 'valid_one' },
  { id: 6, email: null, phone: null, handle: 'has.a.dot' }, // nothing valid: committed, never sent
  { id: null, email: 'null.key@example.com', phone: null, handle: null },
  { id: 50, email: 'dup.one@example.com', phone: null, handle: null },
  { id: 50, email: 'dup.two@example.com', phone: null, handle: null },
];

const RAW_VALUES = [
  'pat.family@example.com',
  '4155552671',
  'changes.soon@example.com',
  'case.only@example.com',
  'not-an-email',
  '7911 123456',
  'null.key@example.com',
  'dup.one@example.com',
  'sam_family',
  'valid_one',
  'has.a.dot',
];

function values(rows: readonly Row[]): string {
  const lit = (v: string | number | null | boolean | undefined) =>
    v === null || v === undefined
      ? 'null'
      : typeof v === 'string'
        ? `'${v.replaceAll("'", "''")}'`
        : String(v);
  return rows
    .map(
      (r) => `(${lit(r.id)}, ${lit(r.email)}, ${lit(r.phone)}, ${lit(r.handle)}, ${lit(r.active ?? true)})`,
    )
    .join(', ');
}

let emulator: RunningEmulator;
let project: E2eProject;

beforeAll(async () => {
  emulator = await startTestEmulator();
  project = await createE2eProject(emulator, {
    setup: [
      'create table {schema}.customers (customer_id bigint, email text, phone text, handle text, active boolean not null)',
      `insert into {schema}.customers values ${values(INITIAL)}`,
    ],
    models: {
      members: {
        sql: '-- the active members\nselect customer_id, email, phone, handle from {schema}.customers where active;\n',
        yml: 'name: members\ndescription: Active members\nprimary_key: customer_id\n',
      },
    },
    activations: `  members_x:
    model: members
    destination: x
    audience: { name: 'Members {schema}' }
    mappings: { email: email, phone: phone_number, handle: handle }
    schedule: every 1 hours
    max_removal_share: 0.9
`,
  });
});

afterAll(async () => {
  await project?.cleanup();
  await emulator?.close();
});

async function sync(...args: string[]) {
  const { result, body } = await project.json<JsonReport>(['sync', 'members_x', ...args]);
  if (!body.activations)
    throw new Error(`no report (exit ${result.code}): ${result.stdout}\n${result.stderr}`);
  return { result, report: body.activations[0]!, body };
}

async function expectInStep(audienceId: string) {
  expect(normalizeHeld(project.held(audienceId))).toEqual(await project.expected('members', MAPPINGS));
}

describe('tailor sync: exact membership across runs (CLI, Postgres, emulator)', () => {
  let audienceId: string;

  it('creates the audience and sends the valid members; null, duplicate and invalid values are counted, not sent', async () => {
    const plan = await project.json<JsonReport>(['plan', 'members_x']);
    expect(plan.result.code).toBe(0);
    expect(plan.body.activations[0]).toMatchObject({ added: 5, removed: 0, changed: 0, invalid: 5 });
    expect(emulator.admin.audiences('18ce54d4x5t').some((a) => a.name === `Members ${project.schema}`)).toBe(
      false,
    );

    const { result, report } = await sync();
    expect(result.code, result.stderr).toBe(0);
    expect(report).toMatchObject({
      status: 'succeeded',
      rows: 9,
      added: 5,
      removed: 0,
      changed: 0,
      rejected: 0,
    });
    expect(report.invalid_by_reason).toEqual({
      null_primary_key: 1,
      duplicate_primary_key: 2,
      invalid_email: 1,
      invalid_handle: 1,
    });
    expect(report.warnings.join('\n')).toMatch(/fewer than 100/);
    expect(report.warnings.join('\n')).toMatch(/more often than every 6 hours/);
    audienceId = report.audience_id!;
    expect(audienceId).toBeTruthy();
    await expectInStep(audienceId);
  });

  it('a second run sends nothing', async () => {
    const { result, report } = await sync();
    expect(result.code).toBe(0);
    expect(report).toMatchObject({ added: 0, removed: 0, changed: 0, refreshed: 0, requests: 0 });
    expect(report.audience_id).toBe(audienceId);
  });

  it('keeps a shared email when one holder leaves, swaps a changed email, and sends nothing for a case-only change', async () => {
    await project.sql('update {schema}.customers set active = false where customer_id = 1');
    await project.sql(
      "update {schema}.customers set email = 'changed.now@example.com' where customer_id = 3",
    );
    await project.sql(
      "update {schema}.customers set email = '  CASE.Only@Example.COM ' where customer_id = 4",
    );
    await project.sql(
      `insert into {schema}.customers values ${values([{ id: 7, email: 'new.member@example.com', phone: '0412 345 678', handle: null }])}`,
    );
    const plan = await project.json<JsonReport>(['plan', 'members_x']);
    // 0412 345 678 is Australian; with region US it is invalid, so member 7 joins by email only.
    expect(plan.body.activations[0]).toMatchObject({ added: 1, removed: 1, changed: 1 });
    const { result, report } = await sync();
    expect(result.code, result.stderr).toBe(0);
    expect(report).toMatchObject({ added: 1, removed: 1, changed: 1, status: 'succeeded' });
    // A delta this small is hashed once, by the safety pass, and delivered from what it kept: its
    // invalid phone is still counted, once.
    expect(report.invalid_by_reason).toMatchObject({ invalid_phone: 1 });
    await expectInStep(audienceId);
    const held = project.held(audienceId);
    const expected = await project.expected('members', MAPPINGS);
    expect(held.email).toEqual(expected.email);
    expect(expected.email!.length).toBe(4); // the family address is still there (member 2)
  });

  it('stays in step through seeded random churn', async () => {
    const rng = prng(7);
    const pool = ['a@example.com', 'b@example.com', 'c@example.com', 'd@example.com', 'E@Example.com '];
    const phones = ['+1 415 555 0101', '(646) 555-0199', '+61 412 345 678', 'bad phone', null];
    for (let round = 0; round < 2; round++) {
      const ids = (
        await project.sql<{ id: string }>(
          'select customer_id::text as id from {schema}.customers where customer_id is not null',
        )
      ).map((r) => Number(r.id));
      for (const id of ids) {
        const r = rng();
        if (r < 0.15)
          await project.sql('update {schema}.customers set active = not active where customer_id = $1', [id]);
        else if (r < 0.4)
          await project.sql('update {schema}.customers set email = $2 where customer_id = $1', [
            id,
            pool[Math.floor(rng() * pool.length)],
          ]);
        else if (r < 0.55)
          await project.sql('update {schema}.customers set phone = $2 where customer_id = $1', [
            id,
            phones[Math.floor(rng() * phones.length)],
          ]);
      }
      const next = 100 + round * 10;
      await project.sql(
        `insert into {schema}.customers values ${values([
          { id: next, email: pool[round]!, phone: phones[round]!, handle: `h${round}` },
          { id: next + 1, email: `solo${round}@example.com`, phone: null, handle: null },
        ])}`,
      );
      const { result, report } = await sync();
      expect(result.code, result.stderr).toBe(0);
      expect(report.status).toBe('succeeded');
      await expectInStep(audienceId);
    }
  });

  it('holds a run that would empty the audience, and --force lets it through', async () => {
    await project.sql('update {schema}.customers set active = false');
    const held = await sync();
    expect(held.result.code).toBe(1);
    expect(held.report.status).toBe('held');
    expect(held.report.error).toMatch(/returned no members/);
    expect(Object.keys(normalizeHeld(project.held(audienceId))).length).toBeGreaterThan(0);

    const forced = await sync('--force');
    expect(forced.result.code, forced.result.stderr).toBe(0);
    expect(forced.report.removed).toBeGreaterThan(0);
    expect(normalizeHeld(project.held(audienceId))).toEqual({});
  });

  it('keeps a history of runs with their counts', async () => {
    const { result, body } = await project.json<{ ok: boolean; runs: Array<Record<string, unknown>> }>([
      'history',
      'members_x',
      '--limit',
      '50',
    ]);
    expect(result.code).toBe(0);
    const runs = body.runs;
    expect(runs.length).toBe(7);
    expect(runs.map((r) => r.status)).toContain('held');
    expect(runs[0]).toMatchObject({
      activation: 'members_x',
      status: 'succeeded',
      removed: expect.any(Number),
    });
    for (const run of runs) {
      expect(Date.parse(run.started_at as string)).toBeLessThanOrEqual(Date.parse(run.finished_at as string));
      for (const key of ['added', 'removed', 'changed', 'refreshed', 'invalid', 'rejected'])
        expect(run[key]).toEqual(expect.any(Number));
    }
  });

  it('state reset forgets the members, and the next run sends them all again to the same audience', async () => {
    await project.sql('update {schema}.customers set active = true');
    await sync();
    const reset = await project.cli(['state', 'reset', 'members_x']);
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.stdout).toMatch(/^reset members_x: forgot \d+ members? and its binding to audience/);
    const { result, report } = await sync('--debug');
    expect(result.code, result.stderr).toBe(0);
    expect(report.audience_id).toBe(audienceId); // bound again by name: never a second audience
    expect(report.added).toBeGreaterThan(0);
    await expectInStep(audienceId);
    expect(
      emulator.admin.audiences('18ce54d4x5t').filter((a) => a.name === `Members ${project.schema}`),
    ).toHaveLength(1);
  });

  it('never writes a raw identifier or a secret to any output or warehouse table', async () => {
    const state = await project.dumpState();
    expect(state.length).toBeGreaterThan(0);
    const everything = [...project.outputs, state].join('\n');
    for (const raw of [
      ...RAW_VALUES,
      'changed.now@example.com',
      'new.member@example.com',
      'solo0@example.com',
    ]) {
      expect(everything.toLowerCase()).not.toContain(raw.toLowerCase());
    }
    expect(everything).not.toContain('demo-consumer-secret');
    expect(everything).not.toContain('demo-access-token-secret');
  });
});
