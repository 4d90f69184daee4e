import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WarehouseError } from '../../src/errors.js';
import { openSource } from '../../src/sources/registry.js';
import { pgliteTemplateDir, silentLogger, uniqueName } from '../helpers/warehouse.js';
import { createStateStore } from '../../src/diff/state-store.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

describe('pglite source', () => {
  let root: string;
  let template: string;
  /** A project directory whose `.tailor/warehouse` is a copy of the template data directory. */
  const project = async () => {
    const dir = join(root, uniqueName('proj'));
    await mkdir(join(dir, '.tailor'), { recursive: true });
    await cp(template, join(dir, '.tailor', 'warehouse'), { recursive: true });
    return dir;
  };
  const config = { type: 'pglite', url: 'file:.tailor/warehouse', fetch_size: 1000 } as const;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'tailor-pglite-src-'));
    template = await pgliteTemplateDir();
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('keeps its data in a directory relative to the project, shared within the process', async () => {
    const dir = await project();
    const first = await openSource(config, { projectDir: dir, logger: silentLogger });
    const second = await openSource(config, { projectDir: dir, logger: silentLogger });
    await createStateStore(first, 'tailor', { logger: silentLogger }).saveBinding({
      activationId: 'act',
      destination: 'x',
      accountId: 'acc',
      audienceId: 'aud',
      audienceName: 'VIP',
      boundAt: new Date('2026-01-01T00:00:00Z'),
    });
    await first.close();
    // The other share stays usable after the first closes.
    expect(
      (await createStateStore(second, 'tailor', { logger: silentLogger }).getBinding('act'))?.audienceId,
    ).toBe('aud');
    expect(await readFile(join(dir, '.tailor', 'warehouse.lock'), 'utf8')).toBe(String(process.pid));
    await second.close();
    await expect(stat(join(dir, '.tailor', 'warehouse.lock'))).rejects.toThrow();
    // File-backed: a new instance reads what the last one wrote.
    await using again = await openSource(config, { projectDir: dir, logger: silentLogger });
    expect(
      (await createStateStore(again, 'tailor', { logger: silentLogger }).getBinding('act'))?.audienceName,
    ).toBe('VIP');
    await expect(again.describeModel('m', 'select nope')).rejects.toThrow(/nope/);
    // A diff's run-scoped tables live in the one shared backend: dropped when the diff is disposed,
    // and when preparing it fails.
    const spec = {
      activationId: 'act',
      modelSql: 'select 1 as id, 2 as v',
      modelName: 'm',
      primaryKey: 'id',
      columns: ['v'],
      refreshBefore: null,
      fullResync: false,
    };
    const temps = async () =>
      (
        await (again as unknown as { pglite: PGlite }).pglite.query<{ n: number }>(
          "select count(*)::int as n from pg_class where relname like 'tailor\\_%' and relpersistence = 't'",
        )
      ).rows[0]!.n;
    {
      await using run = await createStateStore(again, 'tailor', { logger: silentLogger }).prepareDiff(spec);
      expect(run.counts.added).toBe(1);
      expect(await temps()).toBeGreaterThan(0);
    }
    expect(await temps()).toBe(0);
    await expect(
      createStateStore(again, 'tailor', { logger: silentLogger }).prepareDiff({ ...spec, columns: ['nope'] }),
    ).rejects.toThrow(/nope/);
    expect(await temps()).toBe(0);
  });

  it('refuses a data directory another process has open, and takes it over once that process is gone', async () => {
    const dir = await project();
    const script = join(dir, 'hold.mts');
    await writeFile(
      script,
      `import { openSource } from ${JSON.stringify(join(ROOT, 'src/sources/registry.ts'))};
       import { silentLogger } from ${JSON.stringify(join(ROOT, 'test/helpers/warehouse.ts'))};
       import { createStateStore } from ${JSON.stringify(join(ROOT, 'src/diff/state-store.ts'))};
       const source = await openSource(${JSON.stringify(config)}, { projectDir: ${JSON.stringify(dir)}, logger: silentLogger });
       await createStateStore(source, 'tailor', { logger: silentLogger }).migrate();
       process.stdout.write('ready\\n');
       setInterval(() => {}, 1000);`,
    );
    const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', script], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      let out = '';
      child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
      while (!out.includes('ready')) {
        if (child.exitCode !== null) throw new Error(`holder exited with ${child.exitCode}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const error = await openSource(config, { projectDir: dir, logger: silentLogger }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(WarehouseError);
      expect((error as Error).message).toContain(`another process (pid ${child.pid})`);
    } finally {
      // SIGKILL: the holder cannot release anything; its lock file stays behind with a dead pid.
      child.kill('SIGKILL');
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    }
    await using source = await openSource(config, { projectDir: dir, logger: silentLogger });
    expect(await createStateStore(source, 'tailor', { logger: silentLogger }).memberCount('act')).toBe(0);
  });
});
