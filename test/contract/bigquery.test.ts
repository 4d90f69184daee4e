import { afterAll, beforeAll, expect, vi } from 'vitest';
import { bigqueryContractWarehouse } from '../helpers/bigquery-warehouse.js';
import { startBqemulator, type Bqemulator } from '../helpers/bqemulator.js';
import { watchConnections } from '../helpers/fake-snowflake.js';
import { defineSourceContract } from './source-contract.js';

/**
 * The source contract on BigQuery SQL executed for real: the @google-cloud/bigquery client against
 * bqemulator (a DuckDB-backed BigQuery REST emulator, pinned in scripts/bqemulator-requirements.txt),
 * one emulator per file on a free loopback port. Each test gets its own data and state datasets.
 * Never skipped: without the venv (.ci/run makes it) the file fails, saying how to make it.
 */

let emulator: Bqemulator | undefined;
let startError: unknown;
let connections: ReturnType<typeof watchConnections>;
beforeAll(async () => {
  connections = watchConnections();
  // Nothing may probe Google: no key file, no metadata server (the client gets a fake token).
  vi.stubEnv('GOOGLE_APPLICATION_CREDENTIALS', '/nonexistent/tailor-test-key.json');
  vi.stubEnv('METADATA_SERVER_DETECTION', 'none');
  // A failure to start fails every test (counted as failed, not skipped), with the reason.
  emulator = await startBqemulator().catch((error: unknown) => {
    startError = error;
    return undefined;
  });
});
afterAll(async () => {
  await emulator?.stop();
  vi.unstubAllEnvs();
  connections.stop();
  // The SDK and its auth library reached nothing but the emulator: no token endpoint, no metadata server.
  expect(new Set(connections.hosts)).toEqual(new Set(['127.0.0.1']));
});

// The whole file takes about 60 s on a 2-core machine (the property test about half of it), 90 s when
// the cores are shared: each statement is a REST job on the emulator, and a diff is a dozen of them.
defineSourceContract(
  'bigquery (bqemulator)',
  () => {
    if (!emulator) throw startError ?? new Error('bqemulator did not start');
    return bigqueryContractWarehouse(emulator);
  },
  // DuckDB says `Referenced column "emial" not found` or, where it binds the outer query first,
  // `Column "email" ...`, which the redaction cuts at its first quote (a runtime message's quotes
  // may hold a value); BigQuery itself says `Unrecognized name: emial`.
  // The property test runs a few hundred REST jobs: about 30 s alone, past 60 s when the cores are shared.
  { unknownColumnMessage: /Binder Error: (Referenced column|Column)…/, propertyTimeoutMs: 240_000 },
);
