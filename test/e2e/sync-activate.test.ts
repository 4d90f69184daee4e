import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { RunningEmulator } from '../../src/emulator/index.js';
import {
  createE2eProject,
  DEMO_ACCOUNT_ID,
  type E2eProject,
  type JsonActivation,
  normalizeHeld,
  startTestEmulator,
} from '../helpers/e2e.js';

/** One-click activation: `tailor activate <model>` writes tailor.yml (comments kept) and runs the first sync. */

let emulator: RunningEmulator;
let project: E2eProject;

beforeAll(async () => {
  emulator = await startTestEmulator();
  project = await createE2eProject(emulator, {
    setup: [
      'create table {schema}.customers (customer_id int primary key, email text, phone text, tier text)',
      `insert into {schema}.customers select i, 'buyer' || i || '@example.com',
         case when i % 3 = 0 then '+1 415 202 ' || lpad(i::text, 4, '0') end, 'gold'
       from generate_series(1, 150) i`,
    ],
    models: {
      buyers: {
        sql: 'select customer_id, email, phone, tier from {schema}.customers',
        yml: 'name: buyers\ndescription: Everyone who bought\nprimary_key: customer_id\n',
      },
      tiers: {
        sql: 'select customer_id, tier from {schema}.customers',
        yml: 'name: tiers\ndescription: Loyalty tiers\nprimary_key: customer_id\n',
      },
      later: {
        sql: 'select customer_id, email from {schema}.customers where customer_id < 10',
        yml: 'name: later\ndescription: Activated by hand\nprimary_key: customer_id\n',
      },
      spare: {
        sql: 'select customer_id, email from {schema}.customers where customer_id > 140',
        yml: 'name: spare\ndescription: Not yet\nprimary_key: customer_id\n',
      },
    },
    activations: `  # Hand-written, and the comment must survive activate.
  existing_x:
    model: later
    destination: x
    audience: { name: 'Existing {schema}' } # trailing comment
    schedule: manual
`,
  });
});

afterAll(async () => {
  await project?.cleanup();
  await emulator?.close();
});

const config = () => readFile(join(project.dir, 'tailor.yml'), 'utf8');

describe('tailor activate (CLI, Postgres, emulator)', () => {
  it('writes the activation from the defaults, keeps comments, creates the audience and runs the first sync', async () => {
    const before = await config();
    const { result, body } = await project.json<{ ok: boolean; activation: string; run: JsonActivation }>([
      'activate',
      'buyers',
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(body.activation).toBe('buyers_x');
    expect(body.run).toMatchObject({ status: 'succeeded', added: 150, removed: 0 });

    const after = await config();
    expect(after.startsWith(before.trimEnd())).toBe(true); // everything before is kept as written
    expect(after).toContain('# Hand-written, and the comment must survive activate.');
    expect(after).toContain(
      "audience: { name: 'Existing {schema}' } # trailing comment".replace('{schema}', project.schema),
    );
    const activation = parse(after).activations.buyers_x;
    expect(activation).toEqual({
      model: 'buyers',
      destination: 'x',
      audience: { name: 'Tailor: buyers', description: 'Everyone who bought' },
      mappings: { email: 'email', phone: 'phone_number' },
      schedule: 'every 6 hours',
      mode: 'mirror',
      phone_default_region: 'US',
    });

    const audience = emulator.admin.audiences(DEMO_ACCOUNT_ID).find((a) => a.name === 'Tailor: buyers');
    expect(audience?.id).toBe(body.run.audience_id);
    expect(normalizeHeld(project.held(audience!.id))).toEqual(
      await project.expected('buyers', { email: 'email', phone: 'phone_number' }),
    );
    const check = await project.cli(['check', '--offline']);
    expect(check.code, check.stderr).toBe(0);
  });

  it('refuses an activation that exists, a model without mapped columns, and an unknown model', async () => {
    const before = await config();
    const again = await project.cli(['activate', 'buyers']);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('activation buyers_x already exists');

    const none = await project.cli(['activate', 'tiers']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(
      /no column of model tiers \(customer_id, tier\) matches the default mappings/,
    );

    const twice = await project.cli(['activate', 'later']);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain('model later is already activated on x as existing_x');

    const unknown = await project.cli(['activate', 'nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown model "nope"');
    expect(await config()).toBe(before);
  });

  it('--no-run only writes tailor.yml', async () => {
    const audiences = emulator.admin.audiences(DEMO_ACCOUNT_ID).length;
    const result = await project.cli(['activate', 'spare', '--no-run']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('activated spare_x in tailor.yml');
    expect(parse(await config()).activations.spare_x).toMatchObject({
      model: 'spare',
      mappings: { email: 'email' },
    });
    expect(emulator.admin.audiences(DEMO_ACCOUNT_ID).length).toBe(audiences);
  });
});
