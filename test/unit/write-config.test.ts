import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadProject } from '../../src/config/load-project.js';
import { addActivation, editConfig, setActivationEnabled } from '../../src/config/write-config.js';
import { ConfigError } from '../../src/errors.js';
import { MINIMAL_TAILOR_YML, makeProject, VIP_MODEL } from '../helpers/project.js';

const env = { X_CONSUMER_SECRET: 'a-consumer-secret' };
const COMMENTED = `# Our project: keep this comment.\n${MINIMAL_TAILOR_YML}    schedule: manual # by hand\n`;

describe('editConfig (tailor activate and the web UI)', () => {
  it('pauses and resumes through the enabled flag, keeping every comment', async () => {
    const dir = await makeProject({ 'tailor.yml': COMMENTED, ...VIP_MODEL });
    const path = join(dir, 'tailor.yml');
    const paused = await editConfig(
      path,
      (doc) => setActivationEnabled(doc, 'vip_x', false),
      () => loadProject(dir, env),
    );
    expect(paused.config.activations['vip_x']!.enabled).toBe(false);
    const text = await readFile(path, 'utf8');
    expect(text).toContain('# Our project: keep this comment.');
    expect(text).toContain('schedule: manual # by hand');
    expect(text).toMatch(/vip_x:[\s\S]*enabled: false/);
    const resumed = await editConfig(
      path,
      (doc) => setActivationEnabled(doc, 'vip_x', true),
      () => loadProject(dir, env),
    );
    expect(resumed.config.activations['vip_x']!.enabled).toBe(true);
  });

  it('refuses an edit that would break tailor.yml with its check errors, and leaves the file as it was', async () => {
    const dir = await makeProject({ 'tailor.yml': COMMENTED, ...VIP_MODEL });
    const path = join(dir, 'tailor.yml');
    const before = await readFile(path, 'utf8');
    const edit = editConfig(
      path,
      (doc) => addActivation(doc, 'broken_x', { model: 'vip', destination: 'x', schedule: 'every banana' }),
      () => loadProject(dir, env),
    );
    await expect(edit).rejects.toBeInstanceOf(ConfigError);
    await expect(edit).rejects.toThrow(/activations\.broken_x\.schedule/);
    expect(await readFile(path, 'utf8')).toBe(before);
  });

  it('refuses to pause an activation tailor.yml does not have', async () => {
    const dir = await makeProject({ 'tailor.yml': COMMENTED, ...VIP_MODEL });
    await expect(
      editConfig(
        join(dir, 'tailor.yml'),
        (doc) => setActivationEnabled(doc, 'nope', false),
        () => loadProject(dir, env),
      ),
    ).rejects.toThrow('activation nope is not in tailor.yml');
  });
});
