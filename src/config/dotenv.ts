/**
 * The project's `.env`, beside tailor.yml: where `tailor connect` keeps the secrets that tailor.yml
 * references as `${VAR}`, and what every command loads (values already in the environment win). Parsed
 * with Node's own `util.parseEnv` (https://nodejs.org/api/util.html#utilparseenvcontent).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseEnv } from 'node:util';

export const DOTENV_FILE = '.env';

/** The variables of `dir/.env`; none when there is no such file. */
export async function readDotEnv(dir: string): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await readFile(join(dir, DOTENV_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw error;
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(parseEnv(text))) if (value !== undefined) out[key] = value;
  return out;
}

/** readDotEnv, synchronously (the CLI reads it once per command, before anything else). */
export function readDotEnvSync(dir: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(join(dir, DOTENV_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw error;
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(parseEnv(text))) if (value !== undefined) out[key] = value;
  return out;
}

/** `KEY=value`, quoted when the value holds anything a dotenv parser could read otherwise. */
function line(key: string, value: string): string {
  if (/^[A-Za-z0-9_\-.:/+=@,]*$/.test(value)) return `${key}=${value}`;
  if (!value.includes("'") && !/[\r\n]/.test(value)) return `${key}='${value}'`;
  throw new Error(`cannot write ${key} to ${DOTENV_FILE}: its value holds a quote or a line break`);
}

const ASSIGNMENT = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=/;

/**
 * Sets `values` in `dir/.env`: a variable already there is replaced on its own line, a new one is
 * appended; every other line (comments included) stays. The file is written with mode 0600 (owner
 * only: it holds secrets), through a temporary file renamed over it, so it is never half-written.
 */
export async function writeDotEnv(dir: string, values: Readonly<Record<string, string>>): Promise<void> {
  const path = join(dir, DOTENV_FILE);
  let lines: string[] = [];
  try {
    lines = (await readFile(path, 'utf8')).split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    lines = [
      '# Secrets for tailor.yml (written by `tailor connect`). Keep this file out of version control.',
    ];
  }
  const pending = new Map(Object.entries(values));
  lines = lines.map((text) => {
    const key = ASSIGNMENT.exec(text)?.[1];
    if (key === undefined || !pending.has(key)) return text;
    const value = pending.get(key)!;
    pending.delete(key);
    return line(key, value);
  });
  for (const [key, value] of pending) lines.push(line(key, value));
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temp, `${lines.join('\n')}\n`, { mode: 0o600, flag: 'wx' });
    // The mode given at creation is masked by the umask; make it exact.
    await chmod(temp, 0o600);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/**
 * Makes sure `dir/.gitignore` ignores `.env` (creating the file when there is none). Returns whether
 * it changed anything.
 */
export async function ensureGitignored(dir: string, entry = DOTENV_FILE): Promise<boolean> {
  const path = join(dir, '.gitignore');
  let text = '';
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const ignored = text
    .split('\n')
    .map((l) => l.trim())
    .some((l) => l === entry || l === `/${entry}`);
  if (ignored) return false;
  const prefix = text === '' || text.endsWith('\n') ? text : `${text}\n`;
  await writeFile(path, `${prefix}${entry}\n`);
  return true;
}
