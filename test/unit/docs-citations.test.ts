import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CONFIGURATION_URL } from '../../src/cli/commands/init.js';

/**
 * The project stands alone: its docs, code comments and tests cite only files inside the repository,
 * and restate facts from outside with the vendor's URL. Every file of docs/, src/, bench/ and test/ is
 * covered, and no `§N` in docs/ refers to notes that are not in the repository.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Files that were never part of the repository (spelled in pieces so this file does not cite them). */
const OUTSIDE = ['DESIGN', 'CONVENTIONS', 'x-ads-api']
  .map((name) => `${name}.md`)
  .concat([['', 'work', ''].join('/')]);

function filesUnder(dir: string, ext: RegExp): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(join(ROOT, path)).isDirectory()) return filesUnder(path, ext);
    return ext.test(entry) ? [path] : [];
  });
}

const DOCS = ['README.md', ...filesUnder('docs', /\.md$/)];

const SOURCES = [
  ...filesUnder('docs', /^(?!.*\.md$)/),
  ...filesUnder('src', /./),
  ...filesUnder('bench', /./),
  ...filesUnder('test', /./),
];

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchorsOf(file: string): Set<string> {
  const text = readFileSync(join(ROOT, file), 'utf8').replace(/```[\s\S]*?```/g, '');
  return new Set([...text.matchAll(/^#{1,6}\s+(.+)$/gm)].map((match) => slug(match[1]!)));
}

describe('citations', () => {
  it.each([...DOCS, ...SOURCES])('%s cites no file outside the repository', (file) => {
    const text = readFileSync(join(ROOT, file), 'utf8');
    for (const name of OUTSIDE) expect(text, `${file} cites ${name}`).not.toContain(name);
  });

  it.each(DOCS)('%s cites no section of notes outside the repository', (file) => {
    expect(readFileSync(join(ROOT, file), 'utf8'), `${file} cites a §N`).not.toMatch(/§\s?\d/);
  });

  it.each(DOCS)('%s links only to files (and headings) that exist', (file) => {
    const text = readFileSync(join(ROOT, file), 'utf8');
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue; // a URL
      const [path, anchor] = target!.split('#');
      const linked = path ? relative(ROOT, resolve(dirname(join(ROOT, file)), path)) : file;
      expect(existsSync(join(ROOT, linked)), `${file} links to ${target}`).toBe(true);
      if (anchor && linked.endsWith('.md'))
        expect([...anchorsOf(linked)], `${file} links to ${target}`).toContain(anchor);
    }
  });

  it("resolves the README section that a new project's tailor.yml links to", () => {
    const anchor = new URL(CONFIGURATION_URL).hash.slice(1);
    expect(anchor).not.toBe('');
    expect([...anchorsOf('README.md')]).toContain(anchor);
  });
});
