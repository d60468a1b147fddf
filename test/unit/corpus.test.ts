import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { etlText } from '../helpers/etl-local.js';

/**
 * Real-world-shaped sample files (test/corpus/) through the whole ETL domain code: the splitter, the
 * rule, DuckDB. Every expected row was worked out by hand from the file, not copied from a run.
 *
 * (The samples are `.txt`/`.csv`/`.jsonl`, never `.log`: `*.log` is git-ignored. Keys name them as
 * the factories would.)
 */

type Result = Awaited<ReturnType<typeof etlText>>;
type Lines = Result['result']['lines'];

interface EventRow {
  line: number;
  lines: number;
  ts: string;
  device: string | null;
  severity: number | null;
  severity_raw: string | null;
  code: string | null;
  component: string | null;
  message: string;
  attributes: Record<string, unknown> | null;
}

/** [source_line, ts, device, metric, value, unit, attributes] */
type ReadingRow = [number, string, string, string, number, string | null, Record<string, unknown> | null];

interface Case {
  name: string;
  file: string;
  key: string;
  yaml: string;
  objectTime?: string;
  pieceBytes?: number;
  lines: Lines;
  multilineRecords?: number;
  events?: EventRow[];
  readings?: ReadingRow[];
  /** [line, reason prefix] */
  rejects: [number, string][];
}

const corpus = (name: string) => readFileSync(new URL(`../corpus/${name}`, import.meta.url));

const factories = (timezone: string, rules: string) =>
  `version: 1\nfactories:\n  plant:\n    name: Plant\n    timezone: ${timezone}\n    files:\n${rules}`;

/** DuckDB's `2024-03-05 14:02:11.532+00` as `2024-03-05T14:02:11.532Z`. */
function iso(ts: unknown): string {
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?)\+00$/.exec(String(ts));
  if (!m) return `unexpected ts ${String(ts)}`;
  return new Date(`${m[1]}T${m[2]}Z`).toISOString();
}

/** Attributes as an object; an empty text value counts as absent (CSV gives "", templates NULL). */
function attributes(json: unknown): Record<string, unknown> | null {
  if (json === null || json === undefined) return null;
  const obj = JSON.parse(String(json)) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, v === '' ? null : v]));
}

function eventRows(r: Result): EventRow[] {
  return r.events.map((e) => ({
    line: Number(e.source_line),
    lines: Number(e.source_lines),
    ts: iso(e.ts),
    device: e.device as string | null,
    severity: e.severity as number | null,
    severity_raw: e.severity_raw as string | null,
    code: e.code as string | null,
    component: e.component as string | null,
    message: e.message as string,
    attributes: attributes(e.attributes),
  }));
}

function readingRows(r: Result): ReadingRow[] {
  return r.readings.map((x) => [
    Number(x.source_line),
    iso(x.ts),
    x.device as string,
    x.metric as string,
    x.value as number,
    x.unit as string | null,
    attributes(x.attributes),
  ]);
}

const ev = (
  line: number,
  ts: string,
  severity: number | null,
  severity_raw: string | null,
  message: string,
  rest: Partial<EventRow> = {},
): EventRow => ({
  line,
  lines: 1,
  ts,
  device: null,
  severity,
  severity_raw,
  code: null,
  component: null,
  message,
  attributes: null,
  ...rest,
});

// ---------------------------------------------------------------------------------------------------
// log4j / Java: two stack traces, the second with `Caused by:` and `... 5 more`
// ---------------------------------------------------------------------------------------------------

const LOG4J_TEMPLATE = `'<Date> <Time> <Level> \\[<Thread>\\] <Component> - <Content>'`;
const log4j = (thread: string, component: string) => ({
  device: 'line3-controller',
  component,
  attributes: { Thread: thread },
});
const TRACE_1 = [
  'Read timeout - retrying (2/3)',
  'java.net.SocketTimeoutException: Read timed out',
  '\tat java.base/java.net.SocketInputStream.socketRead0(Native Method)',
  '\tat java.base/java.net.SocketInputStream.read(SocketInputStream.java:168)',
  '\tat com.acme.io.ModbusClient.readRegisters(ModbusClient.java:88)',
  '\tat com.acme.line3.PollTask.run(PollTask.java:41)',
];
const TRACE_2 = [
  'Cannot load recipe R-4471',
  'java.lang.IllegalStateException: recipe R-4471 has no tool table',
  '\tat com.acme.line3.RecipeService.validate(RecipeService.java:212)',
  '\tat com.acme.line3.RecipeService.load(RecipeService.java:97)',
  '\tat com.acme.line3.App.lambda$main$0(App.java:55)',
  '\tat java.base/java.lang.Thread.run(Thread.java:833)',
  'Caused by: java.io.FileNotFoundException: /opt/recipes/R-4471/tools.xml (No such file or directory)',
  '\tat java.base/java.io.FileInputStream.open0(Native Method)',
  '\tat java.base/java.io.FileInputStream.open(FileInputStream.java:216)',
  '\tat com.acme.line3.RecipeService.readTools(RecipeService.java:301)',
  '\t... 5 more',
];
const log4jSingleLines: EventRow[] = [
  ev(
    1,
    '2024-03-05T14:02:11.532Z',
    6,
    'INFO',
    'Starting line controller v2.4.1 (build 1187)',
    log4j('main', 'com.acme.line3.App'),
  ),
  ev(
    2,
    '2024-03-05T14:02:11.877Z',
    6,
    'INFO',
    'Connected to 10.20.0.15:502 (unit 7)',
    log4j('main', 'com.acme.io.ModbusClient'),
  ),
];

// ---------------------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------------------

const CASES: Case[] = [
  {
    name: 'log4j with two stack traces (template, default continuation lines)',
    file: 'log4j-controller.txt',
    key: 'plant/2024/03/05/line3-controller.log',
    yaml: factories(
      'UTC',
      `      - match: "line3-*.log"\n        format: template\n        template: ${LOG4J_TEMPLATE}\n        codePattern: '\\b(E\\d{4})\\b'\n`,
    ),
    lines: { total: 24, loaded: 22, rejected: 1, blank: 1, header: 0 },
    multilineRecords: 2,
    events: [
      ...log4jSingleLines,
      ev(3, '2024-03-05T14:02:12.001Z', 3, 'ERROR', TRACE_1.join('\n'), {
        ...log4j('pool-2-thread-1', 'com.acme.io.ModbusClient'),
        lines: 6,
      }),
      ev(9, '2024-03-05T14:02:12.350Z', 4, 'WARN', 'E2104 register 40021 stale for 3 cycles', {
        ...log4j('pool-2-thread-1', 'com.acme.line3.PollTask'),
        code: 'E2104',
      }),
      ev(10, '2024-03-05T14:02:14.118Z', 3, 'ERROR', TRACE_2.join('\n'), {
        ...log4j('recipe-loader', 'com.acme.line3.RecipeService'),
        lines: 11,
      }),
      ev(21, '2024-03-05T14:02:15.004Z', 7, 'DEBUG', 'Heartbeat ok', log4j('main', 'com.acme.line3.App')),
      ev(24, '2024-03-05T14:02:16.440Z', 2, 'FATAL', 'E9001 controller unresponsive, restarting', {
        ...log4j('watchdog', 'com.acme.line3.Watchdog'),
        code: 'E9001',
      }),
    ],
    rejects: [[23, 'does not match the pattern']],
  },
  {
    name: 'log4j with multiline: false (every trace line is a reject of its own)',
    file: 'log4j-controller.txt',
    key: 'plant/2024/03/05/line3-controller.log',
    yaml: factories(
      'UTC',
      `      - match: "line3-*.log"\n        format: template\n        template: ${LOG4J_TEMPLATE}\n        multiline: false\n`,
    ),
    lines: { total: 24, loaded: 7, rejected: 16, blank: 1, header: 0 },
    multilineRecords: 0,
    events: [
      ...log4jSingleLines,
      ev(
        3,
        '2024-03-05T14:02:12.001Z',
        3,
        'ERROR',
        TRACE_1[0]!,
        log4j('pool-2-thread-1', 'com.acme.io.ModbusClient'),
      ),
      ev(
        9,
        '2024-03-05T14:02:12.350Z',
        4,
        'WARN',
        'E2104 register 40021 stale for 3 cycles',
        log4j('pool-2-thread-1', 'com.acme.line3.PollTask'),
      ),
      ev(
        10,
        '2024-03-05T14:02:14.118Z',
        3,
        'ERROR',
        TRACE_2[0]!,
        log4j('recipe-loader', 'com.acme.line3.RecipeService'),
      ),
      ev(21, '2024-03-05T14:02:15.004Z', 7, 'DEBUG', 'Heartbeat ok', log4j('main', 'com.acme.line3.App')),
      ev(
        24,
        '2024-03-05T14:02:16.440Z',
        2,
        'FATAL',
        'E9001 controller unresponsive, restarting',
        log4j('watchdog', 'com.acme.line3.Watchdog'),
      ),
    ],
    rejects: [4, 5, 6, 7, 8, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 23].map((n) => [
      n,
      'does not match the pattern',
    ]),
  },
  {
    name: 'Apache error log, with and without [client …] (optional template group)',
    file: 'apache-error.txt',
    key: 'plant/2005/12/05/error_log',
    yaml: factories(
      'UTC',
      `      - match: "error_log"\n        format: template\n        template: '\\[<Time>\\] \\[<Level>\\]( \\[client <Client>\\])? <Content>'\n        map: { device: { const: web-01 } }\n`,
    ),
    lines: { total: 8, loaded: 7, rejected: 1, blank: 0, header: 0 },
    multilineRecords: 0,
    events: [
      ev(
        1,
        '2005-12-04T04:47:44.000Z',
        5,
        'notice',
        'workerEnv.init() ok /etc/httpd/conf/workers2.properties',
        {
          device: 'web-01',
          attributes: { Client: null },
        },
      ),
      ev(2, '2005-12-04T04:47:44.000Z', 3, 'error', 'mod_jk child workerEnv in error state 6', {
        device: 'web-01',
        attributes: { Client: null },
      }),
      ev(3, '2005-12-04T04:51:08.000Z', 5, 'notice', 'jk2_init() Found child 6725 in scoreboard slot 10', {
        device: 'web-01',
        attributes: { Client: null },
      }),
      ev(4, '2005-12-04T04:51:18.000Z', 3, 'error', 'File does not exist: /var/www/html/awstats', {
        device: 'web-01',
        attributes: { Client: '81.199.21.119' },
      }),
      ev(5, '2005-12-04T06:02:24.000Z', 4, 'warn', 'Directory index forbidden by rule: /var/www/html/', {
        device: 'web-01',
        attributes: { Client: '222.166.160.184' },
      }),
      ev(6, '2005-12-04T07:45:45.000Z', 3, 'error', 'Directory index forbidden by rule: /var/www/html/', {
        device: 'web-01',
        attributes: { Client: '63.13.186.196' },
      }),
      ev(
        7,
        '2005-12-05T03:21:00.000Z',
        2,
        'crit',
        '(13)Permission denied: make_sock: could not bind to address 0.0.0.0:80',
        { device: 'web-01', attributes: { Client: null } },
      ),
    ],
    rejects: [[8, 'does not match the pattern']],
  },
  {
    name: 'RFC 3164 syslog without year across New Year, keyed on 1 January',
    file: 'syslog-newyear.txt',
    key: 'plant/2025/01/01/gw.syslog',
    objectTime: '2025-01-01T07:00:00Z',
    yaml: factories(
      'UTC',
      `      - match: "*.syslog"\n        format: syslog\n        codePattern: '\\b(E\\d{4})\\b'\n`,
    ),
    lines: { total: 8, loaded: 7, rejected: 1, blank: 0, header: 0 },
    events: (
      [
        [
          1,
          '2024-12-31T23:58:01.000Z',
          30,
          'plc-gw',
          'systemd',
          '1',
          'Starting Daily apt upgrade and clean activities...',
        ],
        [
          2,
          '2024-12-31T23:59:58.000Z',
          29,
          'plc-gw',
          'chronyd',
          '612',
          'Selected source 10.20.0.1 (ntp.plant.local)',
        ],
        [
          3,
          '2024-12-31T23:59:59.000Z',
          28,
          'plc-gw',
          'modbusd',
          '2231',
          'E3107 slave 7 did not answer within 500 ms',
        ],
        [
          4,
          '2025-01-01T00:00:00.000Z',
          30,
          'plc-gw',
          'CRON',
          '4410',
          '(root) CMD (/usr/local/bin/rotate-logs --daily)',
        ],
        [5, '2025-01-01T00:00:03.000Z', 27, 'plc-gw', 'modbusd', '2231', 'E3108 slave 7 offline'],
        [
          6,
          '2025-01-01T00:15:42.000Z',
          134,
          'hmi-02',
          'kernel',
          null,
          'usb 1-1.2: new full-speed USB device number 5 using dwc_otg',
        ],
        [8, '2025-01-01T06:00:00.000Z', 13, 'plc-gw', 'logger', null, 'shift change A->B'],
      ] as const
    ).map(([line, ts, pri, host, app, procid, msg]) =>
      ev(line, ts, pri % 8, `<${pri}>`, msg, {
        device: host,
        component: app,
        code: /\b(E\d{4})\b/.exec(msg)?.[1] ?? null,
        attributes: {
          facility: Math.floor(pri / 8),
          procid,
          msgid: null,
          structured_data: null,
          rfc: 3164,
        },
      }),
    ),
    rejects: [[7, 'not a syslog line']],
  },
  {
    name: '/var/log/messages without year across New Year (template, %b %d %H:%M:%S, Berlin)',
    file: 'messages-newyear.txt',
    key: 'plant/2025/01/01/messages',
    objectTime: '2025-01-01T06:00:00Z',
    yaml: factories(
      'Europe/Berlin',
      `      - match: "messages"\n        format: template\n        template: '<Month> <Day> <Time> <Host> <Proc>(\\[<Pid>\\])?: <Content>'\n        map: { ts: [Month, Day, Time], component: Proc }\n        timestamp: { format: '%b %d %H:%M:%S' }\n`,
    ),
    lines: { total: 6, loaded: 5, rejected: 1, blank: 0, header: 0 },
    // Berlin is UTC+1 in winter: local midnight of 1 January 2025 is 23:00 UTC on 31 December.
    events: messagesEvents([
      '2024-12-31T21:59:30.000Z',
      '2024-12-31T22:59:59.000Z',
      '2024-12-31T23:00:00.000Z',
      '2024-12-31T23:00:04.000Z',
      '2024-12-31T23:30:12.000Z',
    ]),
    rejects: [[6, 'ts: cannot parse timestamp "Feb 30 10:00:00"']],
  },
  {
    name: '/var/log/messages without year, timestamp: auto (UTC)',
    file: 'messages-newyear.txt',
    key: 'plant/2025/01/01/messages',
    objectTime: '2025-01-01T06:00:00Z',
    yaml: factories(
      'UTC',
      `      - match: "messages"\n        format: template\n        template: '<Month> <Day> <Time> <Host> <Proc>(\\[<Pid>\\])?: <Content>'\n        map: { ts: [Month, Day, Time], component: Proc }\n`,
    ),
    lines: { total: 6, loaded: 5, rejected: 1, blank: 0, header: 0 },
    events: messagesEvents([
      '2024-12-31T22:59:30.000Z',
      '2024-12-31T23:59:59.000Z',
      '2025-01-01T00:00:00.000Z',
      '2025-01-01T00:00:04.000Z',
      '2025-01-01T00:30:12.000Z',
    ]),
    rejects: [[6, 'ts:']],
  },
  {
    name: 'pipe-separated app log with a Python traceback',
    file: 'pipe-app.txt',
    key: 'plant/2024/03/05/poller.log',
    yaml: factories(
      'UTC',
      `      - match: "poller.log"\n        format: template\n        template: '\\[<Time>\\] <Level> \\| <Thread> \\| <Content>'\n        codePattern: '\\b(E\\d{4})\\b'\n`,
    ),
    lines: { total: 13, loaded: 11, rejected: 1, blank: 1, header: 0 },
    multilineRecords: 1,
    events: [
      ev(1, '2024-03-05T14:02:11.532Z', 6, 'INFO', 'Poller started, 12 registers', {
        device: 'poller',
        attributes: { Thread: 'main' },
      }),
      ev(2, '2024-03-05T14:02:11.917Z', 4, 'WARN', 'Spindle temp 81.4 C above limit | press-07', {
        device: 'poller',
        attributes: { Thread: 'worker-3' },
      }),
      ev(
        3,
        '2024-03-05T14:02:12.004Z',
        3,
        'ERROR',
        [
          'E4711 unhandled exception in poll loop',
          'Traceback (most recent call last):',
          '  File "/opt/poller/poll.py", line 88, in loop',
          '    value = client.read(reg)',
          '  File "/opt/poller/modbus.py", line 41, in read',
          '    raise ValueError(f"bad register {reg}")',
          'ValueError: bad register 40021',
        ].join('\n'),
        { device: 'poller', code: 'E4711', lines: 7, attributes: { Thread: 'worker-1' } },
      ),
      ev(10, '2024-03-05T14:02:12.310Z', 6, 'info', 'Reconnected after 306 ms', {
        device: 'poller',
        attributes: { Thread: 'worker-1' },
      }),
      ev(12, '2024-03-05T14:02:13.000Z', 4, 'W', 'Queue depth 1840 | limit 2000', {
        device: 'poller',
        attributes: { Thread: 'worker-2' },
      }),
    ],
    rejects: [[13, 'ts: cannot parse timestamp "2024-03-05 14:02:99.000"']],
  },
  {
    name: 'whitespace-aligned sensor table (runs of spaces and tabs, trailing spaces, a batch column)',
    file: 'sensor-table.txt',
    key: 'plant/2024/03/05/oven-3.txt',
    yaml: factories(
      'Europe/Berlin',
      `      - match: "oven-*.txt"\n        format: csv\n        delimiter: whitespace\n`,
    ),
    lines: { total: 9, loaded: 4, rejected: 2, blank: 2, header: 1 },
    readings: (
      [
        [2, '2024-03-05T07:00:00.000Z', 'B24-0311', 12, 2.31, 181.4],
        [3, '2024-03-05T07:01:00.000Z', 'B24-0311', 11.8, 2.29, 182],
        [4, '2024-03-05T07:02:00.000Z', 'B24-0311', 11.9, 2.3, 182.6],
        [7, '2024-03-05T07:04:00.000Z', 'B24-0312', 12, 2.41, 180.2],
      ] as const
    ).flatMap(([line, ts, batch, flow, press, temp]): ReadingRow[] => [
      [line, ts, 'oven-3', 'Flow', flow, 'l/min', { Batch: batch }],
      [line, ts, 'oven-3', 'Press', press, 'bar', { Batch: batch }],
      [line, ts, 'oven-3', 'Temp', temp, '°C', { Batch: batch }],
    ]),
    rejects: [
      [6, 'expected 7 fields, got 6'],
      [8, 'ts: cannot parse timestamp "2024-03-05 25:05:00"'],
    ],
  },
  {
    name: 'CSV with quoted fields spanning lines (RFC 4180), one never closed',
    file: 'maintenance-notes.csv',
    key: 'plant/2024/03/05/mill-02-notes.csv',
    yaml: factories(
      'UTC',
      `      - match: "*-notes.csv"\n        format: csv\n        wide: { metrics: ['Spindle temperature [°C]', 'Feed (mm/min)'] }\n`,
    ),
    lines: { total: 11, loaded: 8, rejected: 2, blank: 0, header: 1 },
    multilineRecords: 2,
    readings: (
      [
        [2, '08:00', 1200, 61.5, 'routine'],
        [3, '08:01', 1180, 62, 'operator note: coolant topped up\nchecked filter, OK'],
        [
          5,
          '08:02',
          1175,
          63.1,
          'tool change T12 -> T14, "worn" insert\n replaced by shift B\nsigned off: K. Meyer',
        ],
        [8, '08:03', 1170, null, null],
        [10, '08:05', 1160, 64.2, null],
      ] as const
    ).flatMap(([line, hm, feed, spindle, note]): ReadingRow[] => {
      const ts = `2024-03-05T${hm}:00.000Z`;
      const rows: ReadingRow[] = [[line, ts, 'mill-02', 'Feed', feed, 'mm/min', { note }]];
      if (spindle !== null) rows.push([line, ts, 'mill-02', 'Spindle temperature', spindle, '°C', { note }]);
      return rows;
    }),
    rejects: [
      [9, 'unbalanced quotes'],
      [11, 'value: Spindle temperature is not a number: "hot"'],
    ],
  },
  {
    name: 'CSV with lone-CR line endings (semicolons, decimal commas, Berlin)',
    file: 'lone-cr-level.csv',
    key: 'plant/2024/03/05/tank-1.csv',
    yaml: factories('Europe/Berlin', `      - match: "tank-*.csv"\n        format: csv\n`),
    lines: { total: 7, loaded: 5, rejected: 0, blank: 1, header: 1 },
    readings: [
      [2, '2024-03-05T07:00:00.000Z', 'tank-1', 'Level', 1520.5, 'mm', null],
      [2, '2024-03-05T07:00:00.000Z', 'tank-1', 'Temp', 18.2, 'C', null],
      [3, '2024-03-05T07:00:10.000Z', 'tank-1', 'Level', 1519.9, 'mm', null],
      [3, '2024-03-05T07:00:10.000Z', 'tank-1', 'Temp', 18.2, 'C', null],
      [5, '2024-03-05T07:00:20.000Z', 'tank-1', 'Level', 1519, 'mm', null],
      [5, '2024-03-05T07:00:20.000Z', 'tank-1', 'Temp', 18.3, 'C', null],
      [6, '2024-03-05T07:00:30.000Z', 'tank-1', 'Temp', 18.4, 'C', null],
      [7, '2024-03-05T07:00:40.000Z', 'tank-1', 'Level', 1517.6, 'mm', null],
      [7, '2024-03-05T07:00:40.000Z', 'tank-1', 'Temp', 18.4, 'C', null],
    ],
    rejects: [],
  },
  {
    name: 'lone-CR CSV fed in one piece',
    file: 'lone-cr-level.csv',
    key: 'plant/2024/03/05/tank-1.csv',
    pieceBytes: 1 << 20,
    yaml: factories('Europe/Berlin', `      - match: "tank-*.csv"\n        format: csv\n`),
    lines: { total: 7, loaded: 5, rejected: 0, blank: 1, header: 1 },
    rejects: [],
  },
  {
    name: 'JSON lines with implausible timestamps (plausible window, bad offsets)',
    file: 'kiln-events.jsonl',
    key: 'plant/2024/12/31/kiln.jsonl',
    // The window is [1970-01-01, object time + 24 h] = [1970-01-01, 2025-01-02 12:00 UTC].
    objectTime: '2025-01-01T12:00:00Z',
    yaml: factories(
      'UTC',
      `      - match: "*.jsonl"\n        format: jsonl\n        codePattern: '\\b(E\\d{4})\\b'\n`,
    ),
    lines: { total: 13, loaded: 4, rejected: 8, blank: 1, header: 0 },
    events: [
      ev(1, '2024-12-31T23:00:00.000Z', 6, 'info', 'firing started', {
        device: 'kiln-1',
        attributes: { recipe: 'R7', operator: 'mk' },
      }),
      ev(6, '2025-01-02T11:59:59.000Z', 5, 'notice', 'cooling phase', { device: 'kiln-1' }),
      ev(11, '2024-12-31T09:30:00.000Z', 4, 'W', 'door open', { device: 'kiln-1', attributes: { zone: 3 } }),
      ev(13, '2024-12-31T22:45:00.250Z', 2, 'SEVERE', 'E0042 thermocouple open', {
        device: 'kiln-2',
        code: 'E0042',
      }),
    ],
    rejects: [
      [2, 'ts: "infinity"'],
      [3, 'ts: "-infinity"'],
      [4, 'ts: "1900-01-01T00:00:00Z"'],
      [5, 'ts: "1969-12-31T23:59:59Z"'],
      [7, 'ts: "2025-01-02T12:00:01Z"'],
      [8, 'ts: "2035-06-01T00:00:00Z"'],
      [9, 'ts:'],
      [10, 'ts:'],
    ],
  },
  {
    name: 'counters with no time column: ts from the key date',
    file: 'shift-counters.csv',
    key: 'plant/2024/03/05/shift-counters.csv',
    yaml: factories(
      'UTC',
      `      - match: "shift-*.csv"\n        format: csv\n        map: { ts: { from: keyDate } }\n`,
    ),
    lines: { total: 4, loaded: 3, rejected: 0, blank: 0, header: 1 },
    readings: counterReadings('2024-03-05T00:00:00.000Z'),
    rejects: [],
  },
  {
    name: 'counters with no time column: ts from the object time',
    file: 'shift-counters.csv',
    key: 'plant/inbox/shift-counters.csv',
    objectTime: '2024-03-05T14:00:00Z',
    yaml: factories(
      'UTC',
      `      - match: "**/shift-*.csv"\n        format: csv\n        map: { ts: { from: objectTime } }\n`,
    ),
    lines: { total: 4, loaded: 3, rejected: 0, blank: 0, header: 1 },
    readings: counterReadings('2024-03-05T14:00:00.000Z'),
    rejects: [],
  },
  {
    name: 'Python logging with a regex and multiline.start',
    file: 'python-worker.txt',
    key: 'plant/2024/03/05/worker.log',
    yaml: factories(
      'UTC',
      `      - match: "worker.log"\n        format: regex\n        pattern: '^(?P<ts>\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2},\\d{3}) - (?P<component>[\\w.]+) - (?P<level>[A-Z]+) - (?P<message>.*)$'\n        codePattern: '\\b(E\\d{4})\\b'\n        multiline: { start: '^\\d{4}-\\d{2}-\\d{2} ' }\n`,
    ),
    lines: { total: 12, loaded: 11, rejected: 1, blank: 0, header: 0 },
    multilineRecords: 2,
    events: [
      ev(2, '2024-03-05T14:02:11.532Z', 6, 'INFO', 'polling 12 registers on plc-gw', {
        device: 'worker',
        component: 'worker.poll',
      }),
      ev(
        3,
        '2024-03-05T14:02:12.004Z',
        3,
        'ERROR',
        [
          'poll failed for register 40021',
          'Traceback (most recent call last):',
          '  File "/opt/worker/poll.py", line 88, in loop',
          '    value = registers[reg]',
          'KeyError: 40021',
        ].join('\n'),
        { device: 'worker', component: 'worker.poll', lines: 5 },
      ),
      ev(8, '2024-03-05T14:02:12.350Z', 4, 'WARNING', 'upload queue at 91%', {
        device: 'worker',
        component: 'worker.upload',
      }),
      ev(
        9,
        '2024-03-05T14:02:13.001Z',
        3,
        'ERROR',
        'E5003 upload rejected by MES\n  response: 503 Service Unavailable\n  retry-after: 30',
        { device: 'worker', component: 'worker.upload', code: 'E5003', lines: 3 },
      ),
      ev(12, '2024-03-05T14:02:14.120Z', 6, 'INFO', 'polling 12 registers on plc-gw', {
        device: 'worker',
        component: 'worker.poll',
      }),
    ],
    rejects: [[1, 'does not match the pattern']],
  },
];

function messagesEvents(ts: string[]): EventRow[] {
  const rows: [string, string | null, string][] = [
    ['plcd', '881', 'cycle 88412 done in 4.02 s'],
    ['plcd', '881', 'cycle 88413 done in 4.11 s'],
    ['ntpd', '402', 'leap second table expires 2025-06-28'],
    ['kernel', null, 'eth0: link up, 100Mbps, full-duplex'],
    ['plcd', '881', 'WARN hydraulic pressure 182 bar above setpoint'],
  ];
  return rows.map(([proc, pid, msg], i) =>
    ev(i + 1, ts[i]!, null, null, msg, { device: 'press-07', component: proc, attributes: { Pid: pid } }),
  );
}

function counterReadings(ts: string): ReadingRow[] {
  return (
    [
      [2, 'press-07', 1840, 12],
      [3, 'press-08', 1795, 31],
      [4, 'press-09', 0, 0],
    ] as const
  ).flatMap(([line, device, good, scrap]): ReadingRow[] => [
    [line, ts, device, 'good_parts', good, null, { shift: 'A' }],
    [line, ts, device, 'scrap_parts', scrap, null, { shift: 'A' }],
  ]);
}

describe('corpus', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const r = await etlText(corpus(c.file), {
      yaml: c.yaml,
      key: c.key,
      objectTime: c.objectTime ? new Date(c.objectTime) : undefined,
      pieceBytes: c.pieceBytes,
    });
    const { total, loaded, rejected, blank, header } = r.result.lines;
    expect(loaded + rejected + blank + header).toBe(total);
    expect(r.result.lines).toEqual(c.lines);
    if (c.multilineRecords !== undefined) expect(r.result.multilineRecords).toBe(c.multilineRecords);
    if (c.events) {
      expect(r.rule.table).toBe('events');
      expect(eventRows(r)).toEqual(c.events);
      expect(r.result.rows.events).toBe(c.events.length);
      // Loaded lines are the lines of the loaded records.
      expect(c.events.reduce((n, e) => n + e.lines, 0)).toBe(loaded);
    }
    if (c.readings) {
      expect(r.rule.table).toBe('readings');
      expect(readingRows(r)).toEqual(c.readings);
      expect(r.result.rows.readings).toBe(c.readings.length);
    }
    const rejects = r.rejects.map((x) => [Number(x.source_line), String(x.reason)] as const);
    expect(rejects.map(([line]) => line)).toEqual(c.rejects.map(([line]) => line));
    rejects.forEach(([line, reason], i) => {
      const prefix = c.rejects[i]![1];
      expect(reason.startsWith(prefix), `line ${line}: "${reason}" should start with "${prefix}"`).toBe(true);
    });
    expect(Object.values(r.result.rejectReasons).reduce((a, b) => a + b, 0)).toBe(rejected);
  });
});

describe('wide CSV', () => {
  it('loads 10,000 columns × 20 rows, every reading in place, units split from the header', async () => {
    const COLS = 10_000;
    const ROWS = 20;
    // ts, device, then 9,998 metric columns; two with a unit in the header.
    const metricName = (j: number) =>
      j === 3 ? 'Temp [°C]' : j === 7777 ? 'Feed (mm/min)' : `s${String(j).padStart(4, '0')}`;
    const metrics = Array.from({ length: COLS - 2 }, (_, i) => i + 1);
    // Row r, metric j: j + r/100, written `j.rr`. Row 5 leaves metric 100 empty.
    const cell = (r: number, j: number) => (r === 5 && j === 100 ? '' : `${j}.${String(r).padStart(2, '0')}`);
    const lines = [
      ['ts', 'device', ...metrics.map(metricName)].join(','),
      ...Array.from({ length: ROWS }, (_, i) => {
        const r = i + 1;
        const ts = `2024-03-05T08:${String(r).padStart(2, '0')}:00Z`;
        return [ts, 'press-07', ...metrics.map((j) => cell(r, j))].join(',');
      }),
    ];
    const r = await etlText(`${lines.join('\n')}\n`, {
      key: 'plant/2024/03/05/press-07-wide.csv',
      pieceBytes: 64 * 1024,
    });
    expect(r.rule).toMatchObject({ format: 'csv', table: 'readings' });
    expect(r.rule.fields).toHaveLength(COLS);
    expect(r.result.lines).toEqual({ total: ROWS + 1, loaded: ROWS, rejected: 0, blank: 0, header: 1 });
    expect(r.result.rows.readings).toBe(ROWS * (COLS - 2) - 1);
    expect(r.readings).toHaveLength(ROWS * (COLS - 2) - 1);

    const at = new Map(r.readings.map((x) => [`${x.source_line}/${x.metric}`, x]));
    const spot = (r: number, metric: string) => at.get(`${r + 1}/${metric}`);
    expect(spot(1, 's0001')).toMatchObject({
      value: 1.01,
      unit: null,
      device: 'press-07',
      ts: '2024-03-05 08:01:00+00',
    });
    expect(spot(20, 's9998')).toMatchObject({ value: 9998.2, ts: '2024-03-05 08:20:00+00' });
    expect(spot(7, 's5000')).toMatchObject({ value: 5000.07 });
    expect(spot(12, 'Temp')).toMatchObject({ value: 3.12, unit: '°C' });
    expect(spot(13, 'Feed')).toMatchObject({ value: 7777.13, unit: 'mm/min' });
    expect(spot(5, 's0100')).toBeUndefined();
    expect(spot(5, 's0101')).toMatchObject({ value: 101.05 });
    // Every row has every other metric, each once.
    const perRow = new Map<string, number>();
    for (const x of r.readings)
      perRow.set(String(x.source_line), (perRow.get(String(x.source_line)) ?? 0) + 1);
    expect([...perRow.values()].sort((a, b) => a - b)).toEqual([
      COLS - 3,
      ...Array.from({ length: ROWS - 1 }, () => COLS - 2),
    ]);
  });
});

describe('config validation at load', () => {
  const rule = (body: string) => factories('UTC', `      - match: "*.log"\n${body}`);
  it.each([
    [
      'a regex without named groups',
      '        format: regex\n        pattern: "^(\\\\S+) (.*)$"\n',
      'factories.plant.files[0].pattern',
    ],
    [
      'a codePattern with two groups',
      '        format: jsonl\n        codePattern: "(E)(\\\\d+)"\n',
      'factories.plant.files[0].codePattern',
    ],
    [
      'an invalid multiline.start',
      '        format: template\n        template: "<A> <B>"\n        multiline: { start: "(" }\n',
      'factories.plant.files[0].multiline.start',
    ],
    [
      'a fromKey without a group',
      '        format: jsonl\n        map: { device: { fromKey: "press-\\\\d+" } }\n',
      'factories.plant.files[0].map.device.fromKey',
    ],
    [
      'an unbalanced template',
      "        format: template\n        template: '<A> (<B>'\n",
      'factories.plant.files[0].template',
    ],
  ])('%s names its path', async (_name, body, path) => {
    await expect(etlText('x\n', { yaml: rule(body) })).rejects.toThrow(path);
  });
});

// ---------------------------------------------------------------------------------------------------
// Regressions: ETL bugs found while building the corpus, as fixed examples
// ---------------------------------------------------------------------------------------------------

describe('regressions', () => {
  it('a date-only ISO value is a naive local date, like the same date at 00:00:00', async () => {
    // The bug: `2024-03-05` ends in `-05`, which the ISO reader took for a UTC offset: the value was
    // read as UTC midnight, while `2024-03-05 00:00:00` is Berlin midnight (23:00 UTC the day before).
    const r = await etlText(
      [
        '{"ts":"2024-03-05 00:00:00","device":"d","metric":"m","value":1}',
        '{"ts":"2024-03-05","device":"d","metric":"m","value":2}',
      ].join('\n'),
      {
        yaml: factories(
          'Europe/Berlin',
          '      - match: "*.log"\n        format: jsonl\n        table: readings\n',
        ),
      },
    );
    expect(readingRows(r).map(([line, ts]) => [line, ts])).toEqual([
      [1, '2024-03-04T23:00:00.000Z'],
      [2, '2024-03-04T23:00:00.000Z'],
    ]);
  });

  it('ts: { from: keyDate } is midnight in the factory zone', async () => {
    // The key's day goes through the same ISO reader as a field value (previous test): in Berlin it
    // came out as UTC midnight rather than local midnight.
    const r = await etlText(corpus('shift-counters.csv'), {
      key: 'plant/2024/03/05/shift-counters.csv',
      yaml: factories(
        'Europe/Berlin',
        `      - match: "shift-*.csv"\n        format: csv\n        map: { ts: { from: keyDate } }\n`,
      ),
    });
    expect(new Set(readingRows(r).map(([, ts]) => ts))).toEqual(new Set(['2024-03-04T23:00:00.000Z']));
  });

  it('a blank line inside a quoted CSV field is part of the field', async () => {
    // RFC 4180: a quoted field holds any text, blank lines too. The bug: blank lines were dropped before
    // records were joined, so the note lost them (and they counted as blank, not as record lines).
    const r = await etlText('ts,device,v,note\n2024-01-02T10:00:00Z,d,1,"first\n\nthird"\n', {
      yaml: factories('UTC', '      - match: "*.log"\n        format: csv\n        wide: { metrics: [v] }\n'),
    });
    expect(readingRows(r)).toEqual([
      [2, '2024-01-02T10:00:00.000Z', 'd', 'v', 1, null, { note: 'first\n\nthird' }],
    ]);
    expect(r.result.lines).toEqual({ total: 4, loaded: 3, rejected: 0, blank: 0, header: 1 });
  });

  it('a regex with RE2 inline flags such as (?i) is accepted at load', async () => {
    // RE2 (DuckDB) supports `(?i)`, `(?s)`…; the loader validated with the JavaScript engine, which has
    // no such syntax, and refused the config (the ETL itself prefixes `(?s)` to multiline regexes).
    const r = await etlText('info pump started\nWARN pump hot\n', {
      yaml: factories(
        'UTC',
        `      - match: "*.log"\n        format: regex\n        pattern: '(?i)^(?P<level>info|warn) (?P<message>.*)$'\n        map: { ts: { const: '2024-01-02T10:00:00Z' } }\n`,
      ),
    });
    expect(r.events.map((e) => [e.severity_raw, e.message])).toEqual([
      ['info', 'pump started'],
      ['WARN', 'pump hot'],
    ]);
  });
});
