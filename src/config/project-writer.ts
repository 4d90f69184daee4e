/**
 * Edits of tailor.yml made by commands (`tailor connect`), through yaml's Document API so that every
 * comment, blank line and quoting style the user wrote stays as it was (as `tailor activate` does).
 * Each edit replaces the file atomically and returns the original text, so a caller can put it back.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isMap, isScalar, parseDocument, type Document, type Pair, type YAMLMap } from 'yaml';

async function edit(configPath: string, change: (doc: Document) => boolean): Promise<string> {
  const original = await readFile(configPath, 'utf8');
  const doc = parseDocument(original);
  if (doc.errors.length > 0)
    throw new Error(`${configPath} is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  if (!change(doc)) return original;
  const temp = `${configPath}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temp, String(doc), { flag: 'wx' });
    await rename(temp, configPath);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  return original;
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
 * created), with `comment` above its key.
 */
export async function addDestination(
  configPath: string,
  name: string,
  value: Record<string, unknown>,
  comment?: string,
): Promise<string> {
  return edit(configPath, (doc) => {
    let destinations = doc.get('destinations', true);
    if (!isMap(destinations)) {
      destinations = doc.createNode({}) as YAMLMap;
      const root = doc.contents;
      if (!isMap(root)) throw new Error('tailor.yml is not a mapping');
      const pair = doc.createPair('destinations', destinations) as Pair;
      const at = root.items.findIndex((item) => isScalar(item.key) && item.key.value === 'activations');
      if (at === -1) root.items.push(pair);
      else root.items.splice(at, 0, pair);
    }
    const map = destinations as YAMLMap;
    // `destinations: {}` (as `tailor init` writes it) becomes a block mapping rather than growing inline.
    map.flow = false;
    if (map.has(name)) throw new Error(`destinations.${name} already exists`);
    const pair = doc.createPair(name, doc.createNode(value)) as Pair;
    map.items.push(pair);
    if (isScalar(pair.key)) {
      if (comment) pair.key.commentBefore = comment;
      if (map.items.length > 1) pair.key.spaceBefore = true;
    }
    return true;
  });
}

/** Sets scalar values under `destinations.<name>` (each path relative to it); others stay as they are. */
export async function setDestinationValues(
  configPath: string,
  name: string,
  values: ReadonlyArray<readonly [readonly string[], string]>,
): Promise<string> {
  return edit(configPath, (doc) => {
    if (!isMap(doc.getIn(['destinations', name], true))) throw new Error(`no destinations.${name}`);
    let changed = false;
    for (const [path, value] of values) {
      const full = ['destinations', name, ...path];
      if (doc.getIn(full) === value) continue;
      doc.setIn(full, value);
      changed = true;
    }
    return changed;
  });
}
