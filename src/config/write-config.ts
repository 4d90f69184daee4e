import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { type Document, isMap, isScalar, type Pair, parseDocument, type YAMLMap } from 'yaml';
import { ConfigError } from '../errors.js';

/**
 * Every edit of tailor.yml Tailor makes itself (`tailor activate`, `tailor connect`, the web UI's
 * Activate, Pause/Resume and Connect X), through yaml's Document API so every comment, blank line and
 * quoting style the user wrote stays as it was. The edits below are Document edits; `editConfig` runs
 * one: the file is replaced atomically (a temporary file and a rename), then the caller's `validate`
 * loads the project again; an edit that would leave a tailor.yml that no longer loads is undone and its
 * check errors thrown, so Tailor never leaves a broken file behind.
 *
 * An edit returns `false` when it changed nothing: the file is then left untouched (still validated).
 */
export async function editConfig<T>(
  configPath: string,
  edit: (doc: Document) => void | boolean,
  validate: () => Promise<T>,
): Promise<T> {
  const original = await readFile(configPath, 'utf8');
  const doc = parseDocument(original);
  if (doc.errors.length > 0)
    throw new ConfigError(`tailor.yml is not valid YAML; fix it before Tailor edits it`, {
      hint: 'run `tailor check` to see where',
    });
  if (edit(doc) === false) return validate();
  await replaceFile(configPath, String(doc));
  try {
    return await validate();
  } catch (error) {
    await replaceFile(configPath, original);
    throw error;
  }
}

async function replaceFile(path: string, text: string): Promise<void> {
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temp, text, { flag: 'wx' });
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
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

/** The destination as written (before `${VAR}` substitution), or undefined when tailor.yml has none by that name. */
export async function readRawDestination(
  configPath: string,
  name: string,
): Promise<Record<string, unknown> | undefined> {
  const doc = parseDocument(await readFile(configPath, 'utf8'));
  const node = doc.getIn(['destinations', name], true);
  if (!isMap(node)) return undefined;
  return node.toJSON() as Record<string, unknown>;
}

/**
 * Adds `destinations.<name>` (block style, before `activations:` when `destinations:` must be
 * created), with `comment` above its key; refused when it exists.
 */
export function addDestination(
  doc: Document,
  name: string,
  value: Record<string, unknown>,
  comment?: string,
): void {
  let destinations = doc.get('destinations', true);
  if (!isMap(destinations)) {
    destinations = doc.createNode({}) as YAMLMap;
    const root = doc.contents;
    if (!isMap(root)) throw new ConfigError('tailor.yml is not a mapping; fix it before Tailor edits it');
    const pair = doc.createPair('destinations', destinations) as Pair;
    const at = root.items.findIndex((item) => isScalar(item.key) && item.key.value === 'activations');
    if (at === -1) root.items.push(pair);
    else root.items.splice(at, 0, pair);
  }
  const map = destinations as YAMLMap;
  // `destinations: {}` (as `tailor init` writes it) becomes a block mapping rather than growing inline.
  map.flow = false;
  if (map.has(name)) throw new ConfigError(`destinations.${name} already exists in tailor.yml`);
  const pair = doc.createPair(name, doc.createNode(value)) as Pair;
  map.items.push(pair);
  if (isScalar(pair.key)) {
    if (comment) pair.key.commentBefore = comment;
    if (map.items.length > 1) pair.key.spaceBefore = true;
  }
}

/**
 * Sets scalar values under `destinations.<name>` (each path relative to it); others stay as they are.
 * Returns whether anything changed.
 */
export function setDestinationValues(
  doc: Document,
  name: string,
  values: ReadonlyArray<readonly [readonly string[], string]>,
): boolean {
  if (!isMap(doc.getIn(['destinations', name], true)))
    throw new ConfigError(`destination ${name} is not in tailor.yml`);
  let changed = false;
  for (const [path, value] of values) {
    const full = ['destinations', name, ...path];
    if (doc.getIn(full) === value) continue;
    doc.setIn(full, value);
    changed = true;
  }
  return changed;
}
