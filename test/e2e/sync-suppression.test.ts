import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { XIdentifierType } from '../../src/destinations/x-ads/identifier-types.js';
import type { RunningEmulator } from '../../src/emulator/index.js';
import {
  createE2eProject,
  type E2eProject,
  type JsonReport,
  normalizeHeld,
  startTestEmulator,
} from '../helpers/e2e.js';

/**
 * Suppression end to end (CLI subprocess, Postgres, the emulator over HTTP): two activations (one
 * mirror, one upsert), an opt-out arriving between runs, `--suppression-only`, an opt-out by an
 * identifier another member shares, and an un-opt-out.
 */

const MAPPINGS: Record<string, XIdentifierType> = { email: 'email', phone: 'phone_number' };

let emulator: RunningEmulator;
let project: E2eProject;

const ROWS = [
  // id, email, phone, in a, in b
  [1, 'alice@example.com', '+1 415 555 2671', true, true],
  [2, 'bob@example.com', null, true, false],
  // 3 and 4 share a phone (a household line): opting 3 out by email must leave it to 4.
  [3, 'carol@example.com', '+1 212 555 0147', true, true],
  [4, 'dave@example.com', '(212) 555-0147', true, false],
  [5, 'erin@example.com', null, false, true],
] as const;

const lit = (v: string | number | boolean | null) =>
  v === null ? 'null' : typeof v === 'string' ? `'${v}'` : String(v);

beforeAll(async () => {
  emulator = await startTestEmulator();
  project = await createE2eProject(emulator, {
    setup: [
      // `out`: who the test expects suppression to keep out (it sets it along with opt_outs).
      'create table {schema}.customers (id bigint, email text, phone text, in_a boolean, in_b boolean, out boolean not null default false, not_yet_a boolean not null default false)',
      `insert into {schema}.customers (id, email, phone, in_a, in_b) values ${ROWS.map((r) => `(${r.map(lit).join(', ')})`).join(', ')}`,
      'create table {schema}.opt_outs (opt_out_id bigint, email text, phone text)',
    ],
    models: {
      seg_a: {
        sql: 'select id, email, phone from {schema}.customers where in_a\n',
        yml: 'name: seg_a\ndescription: Segment A\nprimary_key: id\n',
      },
      seg_b: {
        sql: 'select id, email, phone from {schema}.customers where in_b\n',
        yml: 'name: seg_b\ndescription: Segment B\nprimary_key: id\n',
      },
      opt_outs: {
        sql: 'select opt_out_id, email, phone from {schema}.opt_outs\n',
        yml: 'name: opt_outs\ndescription: People who opted out\nprimary_key: opt_out_id\n',
      },
      // What each audience must hold: the segment without the people suppressed.
      expect_a: {
        sql: 'select id, email, phone from {schema}.customers where in_a and not out and not not_yet_a\n',
        yml: 'name: expect_a\ndescription: x\nprimary_key: id\n',
      },
      erin: {
        sql: 'select id, email, phone from {schema}.customers where id = 5\n',
        yml: 'name: erin\ndescription: x\nprimary_key: id\n',
      },
      expect_b: {
        sql: 'select id, email, phone from {schema}.customers where in_b and not out\n',
        yml: 'name: expect_b\ndescription: x\nprimary_key: id\n',
      },
    },
    extraYaml: `
suppression:
  - model: opt_outs
    mappings: { email: email, phone: phone_number }
`,
    activations: `  a_x:
    model: seg_a
    destination: x
    audience: { name: 'A {schema}' }
    mappings: { email: email, phone: phone_number }
    schedule: manual
    mode: mirror
    max_removal_share: 0.1
  b_x:
    model: seg_b
    destination: x
    audience: { name: 'B {schema}' }
    mappings: { email: email, phone: phone_number }
    schedule: manual
    mode: upsert
`,
  });
});

afterAll(async () => {
  await project?.cleanup();
  await emulator?.close();
});

async function syncAll(...args: string[]) {
  const { result, body } = await project.json<JsonReport>(['sync', '--all', ...args]);
  if (!body.activations)
    throw new Error(`no report (exit ${result.code}): ${result.stdout}\n${result.stderr}`);
  const by = Object.fromEntries(body.activations.map((a) => [a.activation, a]));
  return { result, a: by.a_x!, b: by.b_x! };
}

describe('suppression: opted-out people leave every audience and stay out (CLI, Postgres, emulator)', () => {
  const audiences = { a: '', b: '' };
  const expectInStep = async () => {
    expect(normalizeHeld(project.held(audiences.a))).toEqual(await project.expected('expect_a', MAPPINGS));
    expect(normalizeHeld(project.held(audiences.b))).toEqual(await project.expected('expect_b', MAPPINGS));
  };

  it('first runs send both segments (nobody opted out yet)', async () => {
    const { result, a, b } = await syncAll();
    expect(result.code, result.stderr).toBe(0);
    expect(a).toMatchObject({ status: 'succeeded', added: 4, suppressed: 0 });
    expect(b).toMatchObject({ status: 'succeeded', added: 3, suppressed: 0 });
    audiences.a = a.audience_id!;
    audiences.b = b.audience_id!;
    await expectInStep();
  });

  it('an opt-out arriving between runs takes the person out of both audiences (upsert too), past the safety hold', async () => {
    // Written differently from the segment's value: matched after normalization and hashing.
    await project.sql(`insert into {schema}.opt_outs values (1, ' ALICE@Example.com', null)`);
    await project.sql('update {schema}.customers set out = true where id = 1');
    const { result, a, b } = await syncAll();
    expect(result.code, result.stdout + result.stderr).toBe(0);
    // Alice's removal is 2 of A's 7 identifiers, over max_removal_share 0.1: suppression is not held.
    expect(a).toMatchObject({ status: 'succeeded', suppressed: 1, removed: 0, invalid: 0, added: 0 });
    expect(b).toMatchObject({ status: 'succeeded', suppressed: 1, removed: 0, invalid: 0, added: 0 });
    await expectInStep();

    // A second run changes nothing: she stays out, counted again as left out of the segment.
    const again = await syncAll();
    expect(again.a).toMatchObject({ added: 0, removed: 0, requests: 0 });
    await expectInStep();
  });

  it('--suppression-only applies a new opt-out at once and nothing else; the shared phone stays for the other member', async () => {
    await project.sql(`insert into {schema}.opt_outs values (2, 'carol@example.com', null)`);
    await project.sql('update {schema}.customers set out = true where id = 3');
    // A segment change made at the same time waits for the next ordinary run.
    await project.sql('update {schema}.customers set in_a = true where id = 5');
    const { result, a, b } = await syncAll('--suppression-only');
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(a).toMatchObject({ status: 'succeeded', suppressed: 2, added: 0 });
    expect(b).toMatchObject({ status: 'succeeded', suppressed: 2, added: 0 });
    await project.sql('update {schema}.customers set not_yet_a = true where id = 5');
    await expectInStep(); // erin (5) not yet added to A; dave keeps the shared phone
    await project.sql('update {schema}.customers set not_yet_a = false where id = 5');

    const next = await syncAll();
    expect(next.a).toMatchObject({ status: 'succeeded', added: 1 });
    await expectInStep();
  });

  it('an opt-out by a shared identifier suppresses everyone who has it', async () => {
    await project.sql(`insert into {schema}.opt_outs values (3, null, '212-555-0147')`);
    await project.sql('update {schema}.customers set out = true where id = 4');
    const { result, a } = await syncAll();
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(a).toMatchObject({ status: 'succeeded', suppressed: 3 });
    await expectInStep();
  });

  it('an un-opt-out brings the person back at the next run; status and history show the counts', async () => {
    await project.sql('delete from {schema}.opt_outs where opt_out_id = 1');
    await project.sql('update {schema}.customers set out = false where id = 1');
    const { result, a, b } = await syncAll();
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(a).toMatchObject({ status: 'succeeded', added: 1, suppressed: 2 });
    expect(b).toMatchObject({ status: 'succeeded', added: 1, suppressed: 1 });
    await expectInStep();

    const history = await project.cli(['history', 'a_x']);
    expect(history.code).toBe(0);
    expect(history.stdout).toMatch(/suppressed/);
    const status = await project.json<{ activations: { last_run: { suppressed: number } | null }[] }>([
      'status',
    ]);
    expect(status.body.activations.map((s) => s.last_run?.suppressed)).toContain(2);
    // Never a raw identifier in any output.
    for (const output of project.outputs) {
      for (const raw of ['alice@', 'carol@', '2125550147', '555-0147']) expect(output).not.toContain(raw);
    }
  });

  it('upsert: a person who left the segment (still in the audience) and then opts out is deleted from it', async () => {
    const erin = Object.values(await project.expected('erin', MAPPINGS)).flat();
    expect(erin.length).toBeGreaterThan(0);
    await project.sql('update {schema}.customers set in_b = false where id = 5');
    const left = await syncAll();
    expect(left.b).toMatchObject({ status: 'succeeded', removed: 0 });
    const heldB = () => Object.values(project.held(audiences.b)).flat();
    expect(heldB()).toEqual(expect.arrayContaining(erin)); // upsert keeps leavers

    await project.sql(`insert into {schema}.opt_outs values (4, 'erin@example.com', null)`);
    const { result, b } = await syncAll();
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(b.status).toBe('succeeded');
    for (const hash of erin) expect(heldB()).not.toContain(hash);
  });
});
