/**
 * Checks on the regular expressions a config holds. They run in DuckDB, whose engine is RE2: no
 * look-around, no back-references. A pattern is checked when the config is loaded (compiled here with
 * the JavaScript engine, which accepts a superset of RE2's syntax, after refusing what RE2 lacks), so
 * that a bad one fails start-up with its path instead of every file of its rule at ETL time.
 */

/** `(?<name>` and `(?P<name>` groups, in order. */
const NAMED_GROUP = /\(\?P?<([A-Za-z_][A-Za-z0-9_]*)>/g;

/** Normalises named groups to RE2's `(?P<name>…)` and returns the names in positional order. */
export function namedGroups(pattern: string): { regex: string; groups: string[] } {
  const regex = pattern.replace(NAMED_GROUP, '(?P<$1>');
  const groups = [...regex.matchAll(NAMED_GROUP)].map((m) => m[1]!);
  return { regex, groups };
}

/**
 * Capture groups of a pattern, named or not, counted by compiling it with the JavaScript engine: RE2's
 * `(?P<name>` becomes `(?<name>`, and its inline flags (`(?i)`, `(?s:…)`), which JavaScript lacks,
 * are taken out (they change what matches, not the groups).
 */
function captureCount(pattern: string): number {
  const js = pattern
    .replace(/\(\?P</g, '(?<')
    .replace(/\(\?-?[imsU]+(?:-[imsU]+)?\)/g, '')
    .replace(/\(\?-?[imsU]+(?:-[imsU]+)?:/g, '(?:');
  return (new RegExp(`${js}|`).exec('')?.length ?? 1) - 1;
}

/**
 * The problem with a pattern, or undefined. `groups`: `named` — every capture group must be named
 * (DuckDB maps names to groups by position) and there must be one; `one` — exactly one group (its
 * value is what the rule takes); `any` — no requirement.
 */
export function regexProblem(pattern: string, groups: 'named' | 'one' | 'any'): string | undefined {
  const unsupported = /\(\?<?[=!]|\\[1-9]|\\k</.exec(pattern);
  if (unsupported) {
    return `"${unsupported[0]}" (look-around or back-reference) is not supported by RE2, the engine DuckDB uses`;
  }
  let total: number;
  try {
    total = captureCount(pattern);
  } catch (err) {
    return `invalid regex: ${(err as Error).message}`;
  }
  if (groups === 'one' && total !== 1) return `needs exactly one capture group, has ${total}`;
  if (groups === 'named') {
    const named = namedGroups(pattern).groups.length;
    if (named === 0) return 'has no named group (?<name>…): nothing would be extracted';
    if (named !== total) {
      return `has ${total} capture groups but ${named} named ones; use (?:…) for groups that are not fields`;
    }
  }
  return undefined;
}
