import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { xAdsDestinationSchema } from '../../src/destinations/x-ads/x-ads-config.js';
import { createXAdsDestination } from '../../src/destinations/x-ads/x-ads-destination.js';
import {
  DEMO_ACCOUNT_ID,
  DEMO_CREDENTIALS,
  type RunningEmulator,
  startEmulator,
} from '../../src/emulator/index.js';
import { runCli } from '../helpers/cli.js';
import { makeProject, VIP_MODEL } from '../helpers/project.js';

/** `tailor audiences` as a subprocess against the emulator. */

let emulator: RunningEmulator;
let dir: string;

const tailorYml = (url: string) => `warehouse:
  type: pglite
  url: .tailor/warehouse
destinations:
  x:
    type: x_ads
    account_id: ${DEMO_ACCOUNT_ID}
    api_url: ${url}
    credentials:
      consumer_key: ${DEMO_CREDENTIALS.consumerKey}
      consumer_secret: \${X_CONSUMER_SECRET}
      access_token: ${DEMO_CREDENTIALS.accessToken}
      access_token_secret: ${DEMO_CREDENTIALS.accessTokenSecret}
activations:
  vip_x:
    model: vip
    destination: x
`;

beforeAll(async () => {
  emulator = await startEmulator({});
  const destination = createXAdsDestination(
    'x',
    xAdsDestinationSchema.parse({
      type: 'x_ads',
      account_id: DEMO_ACCOUNT_ID,
      api_url: emulator.url,
      credentials: {
        consumer_key: DEMO_CREDENTIALS.consumerKey,
        consumer_secret: DEMO_CREDENTIALS.consumerSecret,
        access_token: DEMO_CREDENTIALS.accessToken,
        access_token_secret: DEMO_CREDENTIALS.accessTokenSecret,
      },
    }),
    { logger: pino({ level: 'silent' }) },
  );
  await destination.createAudience('VIP customers', 'Big spenders');
  await destination.createAudience('Churn risk', undefined);
  dir = await makeProject({ 'tailor.yml': tailorYml(emulator.url), ...VIP_MODEL });
});
afterAll(async () => {
  await emulator.close();
});

const env = { X_CONSUMER_SECRET: DEMO_CREDENTIALS.consumerSecret };

describe('tailor audiences', () => {
  it('prints a table of the account audiences', async () => {
    const result = await runCli(['audiences', '--project', dir], { env });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toBe(`x (account ${DEMO_ACCOUNT_ID}): 2 audiences`);
    expect(lines[1]).toMatch(/^id\s+name\s+size\s+targetable\s+reasons$/);
    expect(lines[3]).toMatch(/^\w+\s+Churn risk\s+-\s+no\s+PROCESSING, TOO_SMALL$/);
    expect(lines[4]).toMatch(/^\w+\s+VIP customers\s+-\s+no\s+PROCESSING, TOO_SMALL$/);
  });

  it('prints JSON with --json, for one --destination', async () => {
    const result = await runCli(['audiences', '--project', dir, '--json', '--destination', 'x'], { env });
    expect(result.code).toBe(0);
    const body = JSON.parse(result.stdout);
    expect(body.destinations).toHaveLength(1);
    expect(body.destinations[0]).toMatchObject({ destination: 'x', account_id: DEMO_ACCOUNT_ID });
    expect(body.destinations[0].audiences.map((a: { name: string }) => a.name)).toEqual([
      'Churn risk',
      'VIP customers',
    ]);
    expect(body.destinations[0].audiences[1]).toMatchObject({
      description: 'Big spenders',
      size: null,
      targetable: false,
      reasons_not_targetable: ['PROCESSING', 'TOO_SMALL'],
    });
  });

  it('exits 1 with an actionable auth error and never prints the secret', async () => {
    const result = await runCli(['audiences', '--project', dir], {
      env: { X_CONSUMER_SECRET: 'wrong-secret-value' },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('destinations.x.credentials');
    expect(result.stderr + result.stdout).not.toContain('wrong-secret-value');
  });
});
