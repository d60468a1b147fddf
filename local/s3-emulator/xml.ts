/**
 * The little XML S3 speaks: responses are rendered from escaped text, and the few request bodies
 * (Delete, CompleteMultipartUpload) are read by a minimal parser. No DTDs, no namespaces beyond
 * dropping a prefix: S3 clients send neither.
 */

const S3_NAMESPACE = 'http://s3.amazonaws.com/doc/2006-03-01/';
const DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n';

/** Markup that is already escaped, as returned by {@link element}. */
export class Xml {
  constructor(readonly markup: string) {}
}

/** What an element may contain; `false`, `null` and `undefined` are left out (for `cond && element(…)`). */
export type XmlChild = Xml | string | number | false | null | undefined | readonly XmlChild[];

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
};

/**
 * Escapes text for element content. Control characters (and CR, which a parser would otherwise
 * normalise away) become character references, as S3 writes them — a key may contain any of them.
 */
function escapeXml(text: string): string {
  return text.replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is escaped
    /[&<>"'\u0000-\u0008\u000b-\u001f]/g,
    (c) => ESCAPES[c] ?? `&#${c.charCodeAt(0)};`,
  );
}

function render(child: XmlChild): string {
  if (child === false || child === null || child === undefined) return '';
  if (child instanceof Xml) return child.markup;
  if (typeof child === 'string') return escapeXml(child);
  if (typeof child === 'number') return String(child);
  return child.map(render).join('');
}

/** `<name>children</name>`, strings escaped. */
export function element(name: string, ...children: XmlChild[]): Xml {
  return new Xml(`<${name}>${render(children)}</${name}>`);
}

/** A response document whose root element is in S3's namespace. */
export function s3Document(root: string, ...children: XmlChild[]): string {
  return `${DECLARATION}<${root} xmlns="${S3_NAMESPACE}">${render(children)}</${root}>`;
}

/** A response document without a namespace (S3's error bodies). */
export function xmlDocument(root: Xml): string {
  return `${DECLARATION}${root.markup}`;
}

/** A parsed element: its local name, child elements, and its own text (entities decoded). */
export interface XmlElement {
  name: string;
  children: XmlElement[];
  text: string;
}

/** Thrown for input the parser does not accept; the caller answers MalformedXML. */
export class XmlSyntaxError extends Error {
  override name = 'XmlSyntaxError';
}

const NAMED_ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decodeText(raw: string): string {
  // XML normalises line ends before anything else; a CR in a key arrives as &#13;.
  return raw.replace(/\r\n?/g, '\n').replace(/&([^;&]*);|&/g, (match, entity: string | undefined) => {
    if (entity === undefined) throw new XmlSyntaxError('bare "&" in text');
    const named = NAMED_ENTITIES[entity];
    if (named !== undefined) return named;
    const code = /^#x[0-9a-fA-F]+$/.test(entity)
      ? Number.parseInt(entity.slice(2), 16)
      : /^#\d+$/.test(entity)
        ? Number(entity.slice(1))
        : Number.NaN;
    if (!(code >= 0 && code <= 0x10ffff)) throw new XmlSyntaxError(`unknown entity "${match}"`);
    return String.fromCodePoint(code);
  });
}

const START_TAG = /<([A-Za-z_][\w.:-]*)(?:\s+[\w.:-]+\s*=\s*(?:"[^"]*"|'[^']*'))*\s*(\/?)>/y;
const END_TAG = /<\/([A-Za-z_][\w.:-]*)\s*>/y;

function localName(name: string): string {
  return name.slice(name.indexOf(':') + 1);
}

/** Parses a small document into its root element. Throws {@link XmlSyntaxError}. */
export function parseXml(source: string): XmlElement {
  const open: XmlElement[] = [];
  let root: XmlElement | undefined;
  let pos = 0;
  const skipPast = (terminator: string) => {
    const end = source.indexOf(terminator, pos);
    if (end === -1) throw new XmlSyntaxError(`unterminated markup at offset ${pos}`);
    const inner = source.slice(pos, end);
    pos = end + terminator.length;
    return inner;
  };
  while (pos < source.length) {
    const current = open.at(-1);
    const lt = source.indexOf('<', pos);
    const textEnd = lt === -1 ? source.length : lt;
    if (textEnd > pos) {
      const raw = source.slice(pos, textEnd);
      if (current) current.text += decodeText(raw);
      else if (raw.trim() !== '') throw new XmlSyntaxError('text outside the root element');
      pos = textEnd;
    } else if (source.startsWith('<?', pos)) {
      skipPast('?>');
    } else if (source.startsWith('<!--', pos)) {
      skipPast('-->');
    } else if (source.startsWith('<![CDATA[', pos)) {
      if (!current) throw new XmlSyntaxError('CDATA outside the root element');
      pos += '<![CDATA['.length;
      current.text += skipPast(']]>');
    } else if (source.startsWith('</', pos)) {
      END_TAG.lastIndex = pos;
      const m = END_TAG.exec(source);
      if (!m || !current || localName(m[1]!) !== current.name) {
        throw new XmlSyntaxError(`unexpected end tag at offset ${pos}`);
      }
      open.pop();
      pos = END_TAG.lastIndex;
    } else {
      START_TAG.lastIndex = pos;
      const m = START_TAG.exec(source);
      if (!m) throw new XmlSyntaxError(`malformed tag at offset ${pos}`);
      const el: XmlElement = { name: localName(m[1]!), children: [], text: '' };
      if (current) current.children.push(el);
      else if (root) throw new XmlSyntaxError('more than one root element');
      else root = el;
      if (m[2] !== '/') open.push(el);
      pos = START_TAG.lastIndex;
    }
  }
  if (!root || open.length > 0) throw new XmlSyntaxError('unexpected end of document');
  return root;
}

/** The child elements of `parent` named `name`. */
export function childrenNamed(parent: XmlElement, name: string): XmlElement[] {
  return parent.children.filter((c) => c.name === name);
}

/** The text of the one child named `name`, or undefined when there is none. */
export function childText(parent: XmlElement, name: string): string | undefined {
  return parent.children.find((c) => c.name === name)?.text;
}
