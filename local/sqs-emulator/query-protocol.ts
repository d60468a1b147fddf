import { missingParameter } from './errors.js';
import type { Output, OutputValue, WireProtocol } from './protocol.js';

/**
 * SQS's Query protocol, still spoken by older SDKs and CLIs (Debian's aws-cli 2.9 among them): form
 * parameters with `Action=<Action>`, flattened lists and maps (`AttributeName.1`,
 * `Attribute.1.Name` / `Attribute.1.Value`, `SendMessageBatchRequestEntry.1.Id`, …), XML responses.
 * Requests are turned into the JSON protocol's shape and results rendered back, so actions know one
 * shape only. A request posted to a queue's URL without a `QueueUrl` parameter addresses that queue.
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-making-api-requests-xml.html
 */
const NAMESPACE = 'http://queue.amazonaws.com/doc/2012-11-05/';

/** Flattened lists: Query name → JSON member. */
const LISTS = new Map([
  ['AttributeName', 'AttributeNames'],
  ['MessageAttributeName', 'MessageAttributeNames'],
  ['MessageSystemAttributeName', 'MessageSystemAttributeNames'],
]);
/** Flattened maps: Query name → JSON member, key field, value field. */
const MAPS = new Map<string, readonly [member: string, key: string, value: string]>([
  ['Attribute', ['Attributes', 'Name', 'Value']],
  ['MessageAttribute', ['MessageAttributes', 'Name', 'Value']],
  ['MessageSystemAttribute', ['MessageSystemAttributes', 'Name', 'Value']],
  ['Tag', ['tags', 'Key', 'Value']],
]);
/** Integer parameters (form values are all text). */
const INTEGERS = new Set([
  'DelaySeconds',
  'MaxNumberOfMessages',
  'MaxNumberOfMessagesPerSecond',
  'MaxResults',
  'VisibilityTimeout',
  'WaitTimeSeconds',
]);
/** Result lists: JSON member → XML element of each item (`Successful` is `<Action>ResultEntry`). */
const LIST_ELEMENTS = new Map([
  ['QueueUrls', 'QueueUrl'],
  ['queueUrls', 'QueueUrl'],
  ['Messages', 'Message'],
  ['Failed', 'BatchResultErrorEntry'],
  ['Results', 'ListMessageMoveTasksResultEntry'],
]);
/** Result maps: JSON member → XML element of each `Name`/`Value` pair. */
const MAP_ELEMENTS = new Map([
  ['Attributes', 'Attribute'],
  ['MessageAttributes', 'MessageAttribute'],
]);

/** Form parameters split on `.`, without prototype (parameter names are the client's). */
interface ParameterTree {
  [segment: string]: ParameterTree | string;
}

function parameterTree(params: URLSearchParams): ParameterTree {
  const root: ParameterTree = Object.create(null);
  for (const [key, value] of params) {
    if (key === 'Action' || key === 'Version') continue;
    const segments = key.split('.');
    let node = root;
    for (const segment of segments.slice(0, -1)) {
      const child = node[segment];
      if (typeof child === 'object') {
        node = child;
      } else {
        const created: ParameterTree = Object.create(null);
        node[segment] = created;
        node = created;
      }
    }
    node[segments.at(-1)!] = value;
  }
  return root;
}

/** The members of a flattened list, by their 1-based index. */
function items(node: ParameterTree | string | undefined): (ParameterTree | string)[] {
  if (node === undefined || typeof node === 'string') return [];
  return Object.keys(node)
    .filter((key) => /^\d+$/.test(key))
    .sort((a, b) => Number(a) - Number(b))
    .map((key) => node[key]!);
}

/** A parameter tree in the JSON protocol's shape. */
function jsonShape(node: ParameterTree): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    const list = LISTS.get(key);
    const map = MAPS.get(key);
    if (list) {
      out[list] = items(value);
    } else if (map) {
      const [member, keyField, valueField] = map;
      const pairs = items(value).filter((item) => typeof item === 'object');
      out[member] = Object.fromEntries(pairs.map((pair) => [pair[keyField], pair[valueField]]));
    } else if (key.endsWith('BatchRequestEntry')) {
      out.Entries = items(value).map((entry) => (typeof entry === 'string' ? entry : jsonShape(entry)));
    } else if (INTEGERS.has(key) && typeof value === 'string' && /^-?\d+$/.test(value)) {
      out[key] = Number(value);
    } else {
      out[key] = value;
    }
  }
  return out;
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"'\r]/g, (c) => `&#x${c.charCodeAt(0).toString(16).toUpperCase()};`);
}

function element(name: string, value: OutputValue, action: string): string {
  if (value === undefined) return '';
  if (Array.isArray(value)) {
    const item = name === 'Successful' ? `${action}ResultEntry` : (LIST_ELEMENTS.get(name) ?? name);
    return value.map((v) => element(item, v, action)).join('');
  }
  if (typeof value === 'object') {
    const pair = MAP_ELEMENTS.get(name);
    if (pair) {
      return Object.entries(value)
        .map(([k, v]) => `<${pair}><Name>${escapeXml(k)}</Name>${element('Value', v, action)}</${pair}>`)
        .join('');
    }
    return `<${name}>${members(value, action)}</${name}>`;
  }
  return `<${name}>${escapeXml(String(value))}</${name}>`;
}

function members(output: Output, action: string): string {
  return Object.entries(output)
    .map(([name, value]) => element(name, value, action))
    .join('');
}

export const queryProtocol: WireProtocol = {
  decode({ rawPath, rawQuery, body }) {
    const params = new URLSearchParams(rawQuery);
    for (const [key, value] of new URLSearchParams(body.toString('utf8'))) params.append(key, value);
    const action = params.get('Action');
    if (!action) throw missingParameter('Action');
    const input = jsonShape(parameterTree(params));
    if (input.QueueUrl === undefined && /^\/[^/]+\/[^/]+\/?$/.test(rawPath)) input.QueueUrl = rawPath;
    return { action, input };
  },

  encode(action, output, requestId) {
    const result =
      output === undefined ? '' : `<${action}Result>${members(output, action)}</${action}Result>`;
    return {
      status: 200,
      headers: { 'content-type': 'text/xml' },
      body: `<?xml version="1.0"?><${action}Response xmlns="${NAMESPACE}">${result}<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`,
    };
  },

  encodeError(error, requestId) {
    return {
      status: error.status,
      headers: { 'content-type': 'text/xml' },
      body: `<?xml version="1.0"?><ErrorResponse xmlns="${NAMESPACE}"><Error><Type>${error.fault}</Type><Code>${escapeXml(error.code)}</Code><Message>${escapeXml(error.message)}</Message><Detail/></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
    };
  },
};
