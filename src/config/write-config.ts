import { readFile, rename, writeFile } from 'node:fs/promises';
import { type Document, isMap, isScalar, parseDocument, type YAMLMap } from 'yaml';
import { ConfigError } from '../errors.js';

/**
 * Edits of tailor.yml made by Tailor itself (`tailor activate`, the web UI's Activate and
 * Pause/Resume), through yaml's Document API so every comment, blank line and quoting style the user
 * wrote stays as it was. The file is replaced atomically (a temporary file and a rename), then the
 * caller's `validate` loads the project again; an edit that would leave a tailor.yml that no longer
 * loads is undone and its check errors thrown, so Tailor never leaves a broken file behind.
 */
export async function editConfig<T>(
  configPath: string,
  edit: (doc: Document) => void,
  validate: () => Promise<T>,
): Promise<T> {
  const original = await readFile(configPath, 'utf8');
  const doc = parseDocument(original);
  if (doc.errors.length > 0)
    throw new ConfigError(`tailor.yml is not valid YAML; fix it before Tailor edits it`, {
      hint: 'run `tailor check` to see where',
    });
  edit(doc);
  await replaceFile(configPath, String(doc));
  try {
    return await validate();
  } catch (error) {
    await replaceFile(configPath, original);
    throw error;
  }
}

async function replaceFile(path: string, text: string): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, text);
  await rename(temp, path);
}

/** Adds `activations.<id>` (a new activation, as `tailor activate` builds it). */
export function addActivation(doc: Document, id: string, value: Record<string, unknown>): void {
  const existing = doc.get('activations', true);
  if (isMap(existing)) {
    // `activations: {}` (as `tailor init` writes it) becomes a block mapping rather than growing inline.
    if (existing.flow) existing.flow = false;
  } else {
    doc.set('activations', doc.createNode({}));
  }
  const node = doc.createNode(value) as YAMLMap;
  const audience = node.get('audience', true);
  if (isMap(audience)) audience.flow = true;
  doc.setIn(['activations', id], node);
  const activations = doc.get('activations', true) as YAMLMap;
  const pair = activations.items.find((item) => isScalar(item.key) && item.key.value === id);
  if (pair && isScalar(pair.key) && activations.items.length > 1) pair.key.spaceBefore = true;
}

/** Sets `activations.<id>.enabled` (Pause: false, Resume: true); the activation must exist. */
export function setActivationEnabled(doc: Document, id: string, enabled: boolean): void {
  const activation = doc.getIn(['activations', id], true);
  if (!isMap(activation)) throw new ConfigError(`activation ${id} is not in tailor.yml`);
  activation.set('enabled', enabled);
}
