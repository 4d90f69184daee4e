/**
 * Who feeds an audience, written where the destination keeps it: a line `tailor: <owner id>` in the
 * audience's description (X custom audiences have one, readable and writable:
 * https://docs.x.com/x-ads-api/audiences/reference), beside
 * whatever text the user gave it. The owner id is a digest naming one activation of one state
 * (src/sync/bind-audience.ts), so that a run can tell an audience it feeds from one another
 * activation or another project's state feeds, without revealing either's names.
 */

/** The owner mark's line: `tailor: ` then the owner id (lowercase letters and digits). */
const MARK = /^tailor: ([a-z0-9]{1,64})[ \t]*$/m;
const MARK_LINES = /^tailor: [a-z0-9]{1,64}[ \t]*$/gm;

/** The owner id a description names, or null when it carries no mark. */
export function readOwnerMark(description: string | null | undefined): string | null {
  return MARK.exec(description ?? '')?.[1] ?? null;
}

/**
 * The description with `ownerId`'s mark as its last line, the user's own text kept above it (any
 * earlier mark is replaced). An empty description becomes the mark alone.
 */
export function withOwnerMark(description: string | null | undefined, ownerId: string): string {
  if (!/^[a-z0-9]{1,64}$/.test(ownerId)) throw new TypeError(`not an owner id: ${JSON.stringify(ownerId)}`);
  const text = (description ?? '')
    .replace(MARK_LINES, '')
    .replace(/\n{2,}/g, '\n')
    .trim();
  return text === '' ? `tailor: ${ownerId}` : `${text}\ntailor: ${ownerId}`;
}
