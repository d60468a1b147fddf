/**
 * Compiles Loghub-style log templates (`\[<Time>\] <Level> \| <Thread> \| <Content>`) into one anchored
 * RE2 pattern for DuckDB's `regexp_extract(line, pattern, [names])`.
 *
 * Grammar (docs/configuration.md, "Template grammar", is the user-facing copy):
 * - `<Name>` (a letter or `_`, then letters, digits, `_`) is a field. Each name at most once, compared
 *   ignoring case (DuckDB struct keys are case-insensitive). A field captures lazily, `(.*?)`; the last
 *   field captures the rest, `(.*)`, unless an optional part comes after it (then it stays lazy, or the
 *   optional part could never match). With `multiline` the last field also matches newlines.
 * - `\x` is the literal character x for any x but a letter or digit (`\d`, `\s`, `\1` are regex
 *   escapes, refused); a trailing lone `\` is an error.
 * - `( … )?` is an optional part, `(?: … )?`; it may hold fields, literals and other groups.
 *   `( … )` without `?` is literal parentheses around its content. Parentheses must balance.
 * - A run of spaces/tabs matches `[ \t]+`. Runs at the very start and end of the template are dropped.
 *   The line may carry trailing spaces/tabs (`[ \t]*$`) unless the template ends with a field.
 * - Anything else is a literal character.
 *
 * The only capturing groups are the fields, in the order they appear: DuckDB maps the names to groups
 * by position, so all structure uses `(?:…)`.
 */

export interface CompiledTemplate {
  /** Anchored RE2 pattern (`^…$`). */
  regex: string;
  /** Field names in capture-group order. */
  groups: string[];
}

/** A template that cannot be compiled; `position` is the 0-based offset of the offending character. */
export class TemplateError extends Error {
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(message);
    this.name = 'TemplateError';
  }
}

type Node =
  | { kind: 'literal'; text: string }
  | { kind: 'space' }
  | { kind: 'field'; name: string }
  | { kind: 'group'; optional: boolean; body: Node[] };

const FIELD = /<([A-Za-z_][A-Za-z0-9_]*)>/y;
const SPACE = /[ \t]+/y;

class Parser {
  private i = 0;
  /** Lower-cased field name → where it first appeared. */
  private readonly seen = new Map<string, { name: string; at: number }>();

  constructor(private readonly template: string) {}

  parse(): Node[] {
    const nodes = this.sequence();
    if (this.i < this.template.length) {
      // sequence() only stops early at a ')' that no group opened.
      throw new TemplateError(`unbalanced ")" at ${this.i}`, this.i);
    }
    if (this.seen.size === 0) {
      throw new TemplateError(
        `no field: a template needs at least one <Name> (none by the end, at ${this.i})`,
        this.i,
      );
    }
    return nodes;
  }

  /** Reads nodes up to the end or an unconsumed ')'. */
  private sequence(): Node[] {
    const t = this.template;
    const nodes: Node[] = [];
    const literal = (text: string) => {
      const last = nodes.at(-1);
      if (last?.kind === 'literal') last.text += text;
      else nodes.push({ kind: 'literal', text });
    };
    while (this.i < t.length) {
      const ch = t[this.i]!;
      if (ch === ')') break;
      if (ch === '\\') {
        if (this.i + 1 >= t.length) {
          throw new TemplateError(
            `trailing "\\" at ${this.i} escapes nothing (write "\\\\" for a backslash)`,
            this.i,
          );
        }
        // Whole code point, so an escaped astral character is not split into lone surrogates.
        const escaped = String.fromCodePoint(t.codePointAt(this.i + 1)!);
        // `\d`, `\s`, `\w`, `\1`… are regex classes, which a template does not have: refused rather
        // than read as the letter, which would quietly match nothing.
        if (/^[A-Za-z0-9]$/.test(escaped)) {
          throw new TemplateError(
            `"\\${escaped}" at ${this.i} is a regex escape; templates are not regexes: write the character itself, or use a regex rule`,
            this.i,
          );
        }
        literal(escaped);
        this.i += 1 + escaped.length;
      } else if (ch === ' ' || ch === '\t') {
        SPACE.lastIndex = this.i;
        SPACE.exec(t);
        this.i = SPACE.lastIndex;
        nodes.push({ kind: 'space' });
      } else if (ch === '(') {
        const open = this.i++;
        const body = this.sequence();
        if (t[this.i] !== ')') throw new TemplateError(`unbalanced "(" at ${open}`, open);
        this.i++;
        const optional = t[this.i] === '?';
        if (optional) this.i++;
        nodes.push({ kind: 'group', optional, body });
      } else if (ch === '<' && this.field(nodes)) {
        // field() consumed it
      } else {
        literal(ch);
        this.i++;
      }
    }
    return nodes;
  }

  /** A `<Name>` at the cursor becomes a field node; anything else (`<134>`, `<-`) is left as literal text. */
  private field(nodes: Node[]): boolean {
    FIELD.lastIndex = this.i;
    const m = FIELD.exec(this.template);
    if (!m) return false;
    const name = m[1]!;
    const before = this.seen.get(name.toLowerCase());
    if (before) {
      const caseNote = before.name === name ? '' : ' (field names ignore case)';
      throw new TemplateError(
        `duplicate field <${name}> at ${this.i}, already at ${before.at}${caseNote}`,
        this.i,
      );
    }
    this.seen.set(name.toLowerCase(), { name, at: this.i });
    nodes.push({ kind: 'field', name });
    this.i = FIELD.lastIndex;
    return true;
  }
}

/** Compiles a template; throws {@link TemplateError} when it is malformed. */
export function templateToRegex(template: string, options?: { multiline?: boolean }): CompiledTemplate {
  const nodes = new Parser(template).parse();
  // Whitespace around the template is formatting, not content (groups keep theirs).
  while (nodes[0]?.kind === 'space') nodes.shift();
  while (nodes.at(-1)?.kind === 'space') nodes.pop();

  const groups: string[] = [];
  const fieldCount = countFields(nodes);
  // A greedy last field followed by an optional part would always win and leave the optional part
  // empty (`<Content>( \(<Peer>\))?` would put the peer into Content), so then it stays lazy.
  const rest = optionalAfterLastField(nodes, fieldCount) ? '.*?' : '.*';
  // Multiline records are their lines joined with \n: only the last field may cross them, so the
  // earlier fields still split the first line.
  const last = options?.multiline ? `((?s:${rest}))` : `(${rest})`;

  const emit = (seq: readonly Node[]): string =>
    seq
      .map((node) => {
        if (node.kind === 'literal') return escapeRe2(node.text);
        if (node.kind === 'space') return '[ \\t]+';
        if (node.kind === 'field') {
          groups.push(node.name);
          return groups.length < fieldCount ? '(.*?)' : last;
        }
        return node.optional ? `(?:${emit(node.body)})?` : `\\(${emit(node.body)}\\)`;
      })
      .join('');

  const body = emit(nodes);
  // Trailing spaces on the line are tolerated, except after a final greedy field: it already takes
  // them (they are part of "the rest", and the loader trims field values anyway).
  const tail = nodes.at(-1)?.kind === 'field' ? '' : '[ \\t]*';
  return { regex: `^${body}${tail}$`, groups };
}

function countFields(nodes: readonly Node[]): number {
  let n = 0;
  for (const node of nodes) {
    if (node.kind === 'field') n++;
    else if (node.kind === 'group') n += countFields(node.body);
  }
  return n;
}

/** Whether an optional group opens after the last field, in template order. */
function optionalAfterLastField(nodes: readonly Node[], fieldCount: number): boolean {
  let fields = 0;
  let after = false;
  const walk = (seq: readonly Node[]) => {
    for (const node of seq) {
      if (node.kind === 'field') fields++;
      else if (node.kind === 'group') {
        if (node.optional && fields === fieldCount) after = true;
        walk(node.body);
      }
    }
  };
  walk(nodes);
  return after;
}

/** Escapes RE2 metacharacters; control characters become `\xHH` so the pattern stays printable. */
function escapeRe2(text: string): string {
  return text.replace(/[\\^$.|?*+()[\]{}]|[^ -~\u0080-\u{10ffff}]/gu, (c) => {
    const code = c.codePointAt(0)!;
    return code < 0x20 || code === 0x7f ? `\\x${code.toString(16).padStart(2, '0')}` : `\\${c}`;
  });
}
