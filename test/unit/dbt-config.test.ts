import { describe, expect, it } from 'vitest';
import { loadProject } from '../../src/config/load-project.js';
import { ConfigError } from '../../src/errors.js';
import { MINIMAL_TAILOR_YML, makeProject, VIP_MODEL } from '../helpers/project.js';

/** Cross-checks of tailor.yml that involve dbt schedules and alerts (no warehouse, no dbt needed). */

const env = { X_CONSUMER_SECRET: 'cs' };

async function issues(files: Record<string, string>): Promise<string[]> {
  const dir = await makeProject(files);
  const error = await loadProject(dir, env).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ConfigError);
  return (error as ConfigError).issues.map((issue) => `${issue.path}: ${issue.message}`);
}

describe('dbt schedules and alerts in tailor.yml', () => {
  it('refuses `after dbt` without models_from: dbt, and for a models/ file', async () => {
    const yml = MINIMAL_TAILOR_YML.replace(
      '    destination: x\n',
      '    destination: x\n    schedule: after dbt\n',
    );
    expect(await issues({ 'tailor.yml': yml, ...VIP_MODEL })).toEqual([
      'activations.vip_x.schedule: "after dbt" needs models_from: dbt (and a dbt model)',
    ]);
    // With models_from: dbt, a manifest that marks nothing: vip is still a models/ file.
    const manifest = JSON.stringify({
      metadata: {
        dbt_schema_version: 'https://schemas.getdbt.com/dbt/manifest/v12.json',
        dbt_version: '1.11.16',
      },
      nodes: {},
    });
    expect(
      await issues({
        'tailor.yml': `models_from: dbt\n${yml}`,
        'target/manifest.json': manifest,
        ...VIP_MODEL,
      }),
    ).toEqual(['activations.vip_x.schedule: "after dbt" needs a dbt model; vip is a models/ file']);
  });

  it('names an unknown activation in an alert, and a webhook URL that is not one', async () => {
    const yml = `alerts:\n  ops:\n    type: webhook\n    url: not-a-url\n    activations: [vip_x, nope_x]\n${MINIMAL_TAILOR_YML}`;
    const found = await issues({ 'tailor.yml': yml, ...VIP_MODEL });
    expect(found).toContain('alerts.ops.activations.1: unknown activation "nope_x"');
    expect(found.some((issue) => issue.startsWith('alerts.ops.url: '))).toBe(true);
    expect(found.join('\n')).not.toContain('not-a-url'); // a secret, even when wrong
  });
});
