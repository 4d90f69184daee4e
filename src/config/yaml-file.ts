import { readFile } from 'node:fs/promises';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, visit } from 'yaml';
import type { ConfigIssue } from '../errors.js';

/** A parsed YAML file that can tell the line and column of any path in it, for error messages. */
export interface YamlFile {
  file: string;
  value: unknown;
  locate(path: readonly PropertyKey[]): { line: number; column: number } | undefined;
}

/**
 * Reads and parses a YAML file. Syntax errors and a missing file become issues (with line and
 * column), never exceptions, so `tailor check` can report them with everything else.
 */
export async function readYamlFile(
  absPath: string,
  file: string,
  issues: ConfigIssue[],
): Promise<YamlFile | undefined> {
  let text: string;
  try {
    text = await readFile(absPath, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    issues.push({
      file,
      path: '',
      message: code === 'ENOENT' ? 'file not found' : `cannot read: ${code ?? String(error)}`,
    });
    return undefined;
  }
  return parseYamlText(text, file, issues);
}

/**
 * How far aliases may expand (yaml's own default, set here so that it cannot change under us). A
 * project file has no use for more; a file with exponential aliases is refused, not expanded.
 * https://eemeli.org/yaml/#tojs-options
 */
const MAX_ALIAS_COUNT = 100;

export function parseYamlText(text: string, file: string, issues: ConfigIssue[]): YamlFile | undefined {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    for (const error of doc.errors) {
      const pos = lineCounter.linePos(error.pos[0]);
      issues.push({
        file,
        path: '',
        message: `invalid YAML: ${error.message.split('\n')[0]}`,
        line: pos.line,
        column: pos.col,
      });
    }
    return undefined;
  }
  const locate = (path: readonly PropertyKey[]) => {
    // Walk down as far as the path exists, so a missing key points at its parent.
    let node: unknown = doc.contents;
    let best: { line: number; column: number } | undefined;
    const mark = (n: unknown) => {
      const range = (n as { range?: [number, number, number] } | null)?.range;
      if (range) {
        const pos = lineCounter.linePos(range[0]);
        best = { line: pos.line, column: pos.col };
      }
    };
    mark(node);
    for (const key of path) {
      if (isMap(node)) {
        const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(key));
        if (!pair) break;
        mark(pair.key);
        node = pair.value;
        if (node && !isScalar(node)) continue;
        if (node) mark(node);
      } else if (isSeq(node)) {
        node = node.items[Number(key)];
        mark(node);
      } else {
        break;
      }
    }
    return best;
  };
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) ?? null;
  } catch (error) {
    // yaml refuses aliases that expand past maxAliasCount (a "billion laughs" file would otherwise
    // take all memory), and aliases whose anchor is not defined before them. Point at the first alias
    // in question: where the expansion starts, or the alias that names no anchor.
    const message = error instanceof Error ? error.message.split('\n')[0]! : String(error);
    const excessive = /excessive alias count/i.test(message);
    let at: { line: number; column: number } | undefined;
    visit(doc, {
      Alias(_key, node) {
        if (!excessive && node.resolve(doc) !== undefined) return undefined;
        if (node.range) {
          const pos = lineCounter.linePos(node.range[0]);
          at = { line: pos.line, column: pos.col };
        }
        return visit.BREAK;
      },
    });
    issues.push({
      file,
      path: '',
      message: excessive
        ? 'invalid YAML: its aliases (*name) expand to too many copies (the limit guards against exponential aliases); write the values out instead'
        : `invalid YAML: ${message}`,
      ...(at ?? {}),
    });
    return undefined;
  }
  return { file, value, locate };
}
