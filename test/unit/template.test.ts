import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TemplateError, templateToRegex } from '../../functions/contracts/template.js';

// The patterns are meant for DuckDB's RE2, so every expectation is checked there; JS RegExp (another
// leftmost-first engine) must agree on single-line patterns, which catches escaping mistakes early.

let db: DuckDBInstance;
let c: DuckDBConnection;
beforeAll(async () => {
  db = await DuckDBInstance.create(':memory:');
  c = await db.connect();
});
afterAll(() => {
  c.disconnectSync();
  db.closeSync();
});

const sqlString = (s: string) => `'${s.replace(/'/g, "''")}'`;

/**
 * The fields DuckDB extracts from `line`, or null when the line does not match. The pattern is inlined:
 * regexp_extract with a list of names requires a constant pattern (as in the loader's SQL).
 */
async function duckExtract(
  line: string,
  compiled: { regex: string; groups: string[] },
): Promise<Record<string, string> | null> {
  const re = sqlString(compiled.regex);
  const names = compiled.groups.map(sqlString).join(', ');
  const reader = await c.runAndReadAll(
    `SELECT regexp_matches($line, ${re}) AS m, regexp_extract($line, ${re}, [${names}]) AS g`,
    { line },
  );
  const row = reader.getRowObjectsJson()[0] as { m: boolean; g: Record<string, string> };
  return row.m ? row.g : null;
}

/** The same with JS RegExp; groups that did not take part are '' as in DuckDB. */
function jsExtract(
  line: string,
  compiled: { regex: string; groups: string[] },
): Record<string, string> | null {
  const m = new RegExp(compiled.regex).exec(line);
  if (!m) return null;
  return Object.fromEntries(compiled.groups.map((g, i) => [g, m[i + 1] ?? '']));
}

type Shape = {
  name: string;
  template: string;
  groups: string[];
  /** A line and its fields, or null when it must not match. */
  lines: [string, Record<string, string> | null][];
};

const shapes: Shape[] = [
  {
    name: 'Java / log4j',
    template: String.raw`<Date> <Time> <Level> \[<Thread>\] <Component> - <Content>`,
    groups: ['Date', 'Time', 'Level', 'Thread', 'Component', 'Content'],
    lines: [
      [
        '2024-03-05 14:02:11,532 INFO  [main] com.acme.press.Controller - Press 7 cycle complete in 812 ms',
        {
          Date: '2024-03-05',
          Time: '14:02:11,532',
          Level: 'INFO',
          Thread: 'main',
          Component: 'com.acme.press.Controller',
          Content: 'Press 7 cycle complete in 812 ms',
        },
      ],
      [
        '2024-03-05 14:02:12,001 ERROR [pool-2-thread-1] com.acme.io.ModbusClient - Read timeout - retrying (2/3)',
        {
          Date: '2024-03-05',
          Time: '14:02:12,001',
          Level: 'ERROR',
          Thread: 'pool-2-thread-1',
          Component: 'com.acme.io.ModbusClient',
          Content: 'Read timeout - retrying (2/3)',
        },
      ],
      ['2024-03-05 14:02:11,532 INFO main com.acme.press.Controller - no brackets', null],
      ['Exception in thread "main" java.lang.NullPointerException', null],
    ],
  },
  {
    name: 'Apache error log',
    template: String.raw`\[<Time>\] \[<Level>\] <Content>`,
    groups: ['Time', 'Level', 'Content'],
    lines: [
      [
        '[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok /etc/httpd/conf/workers2.properties',
        {
          Time: 'Sun Dec 04 04:47:44 2005',
          Level: 'notice',
          Content: 'workerEnv.init() ok /etc/httpd/conf/workers2.properties',
        },
      ],
      [
        '[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6',
        {
          Time: 'Sun Dec 04 04:47:44 2005',
          Level: 'error',
          Content: 'mod_jk child workerEnv in error state 6',
        },
      ],
      ['Sun Dec 04 04:47:44 2005 [error] no brackets around the time', null],
      ['[Sun Dec 04 04:47:44 2005] error [x] level not bracketed', null],
    ],
  },
  {
    name: 'Apache error log with optional client',
    template: String.raw`\[<Time>\] \[<Level>\]( \[client <Client>\])? <Content>`,
    groups: ['Time', 'Level', 'Client', 'Content'],
    lines: [
      [
        '[Sun Dec 04 20:47:17 2005] [error] [client 81.199.21.119] File does not exist: /var/www/html/awstats',
        {
          Time: 'Sun Dec 04 20:47:17 2005',
          Level: 'error',
          Client: '81.199.21.119',
          Content: 'File does not exist: /var/www/html/awstats',
        },
      ],
      [
        '[Mon Dec 05 07:57:02 2005] [notice] jk2_init() Found child 4765 in scoreboard slot 8',
        {
          Time: 'Mon Dec 05 07:57:02 2005',
          Level: 'notice',
          Client: '',
          Content: 'jk2_init() Found child 4765 in scoreboard slot 8',
        },
      ],
      ['[Mon Dec 05 07:57:02 2005] [notice]', null],
    ],
  },
  {
    name: 'syslog with optional [pid]',
    template: String.raw`<Month> <Day> <Time> <Host> <Proc>(\[<Pid>\])?: <Content>`,
    groups: ['Month', 'Day', 'Time', 'Host', 'Proc', 'Pid', 'Content'],
    lines: [
      [
        'Jun  9 06:06:20 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0',
        {
          Month: 'Jun',
          Day: '9',
          Time: '06:06:20',
          Host: 'combo',
          Proc: 'sshd(pam_unix)',
          Pid: '19939',
          Content: 'authentication failure; logname= uid=0',
        },
      ],
      [
        'Jun 10 11:32:17 combo kernel: Linux version 2.6.5-1.358',
        {
          Month: 'Jun',
          Day: '10',
          Time: '11:32:17',
          Host: 'combo',
          Proc: 'kernel',
          Pid: '',
          Content: 'Linux version 2.6.5-1.358',
        },
      ],
      [
        'Mar  1 08:15:02 plc-gw CRON[1201]: (root) CMD (run-parts /etc/cron.hourly: ok)',
        {
          Month: 'Mar',
          Day: '1',
          Time: '08:15:02',
          Host: 'plc-gw',
          Proc: 'CRON',
          Pid: '1201',
          Content: '(root) CMD (run-parts /etc/cron.hourly: ok)',
        },
      ],
      ['Jun 10 11:32:17 combo', null],
      ['-- MARK --', null],
    ],
  },
  {
    name: 'pipe-separated',
    template: String.raw`\[<Time>\] <Level> \| <Thread> \| <Content>`,
    groups: ['Time', 'Level', 'Thread', 'Content'],
    lines: [
      [
        '[2024-03-05 14:02:11.532] WARN | worker-3 | Spindle temp 81.4 C above limit | press-07',
        {
          Time: '2024-03-05 14:02:11.532',
          Level: 'WARN',
          Thread: 'worker-3',
          Content: 'Spindle temp 81.4 C above limit | press-07',
        },
      ],
      [
        '[2024-03-05 14:02:11.532]  INFO  |\tmain  |  Started',
        { Time: '2024-03-05 14:02:11.532', Level: 'INFO', Thread: 'main', Content: 'Started' },
      ],
      ['[2024-03-05 14:02:11.532] WARN worker-3 no pipes', null],
      ['2024-03-05 14:02:11.532 WARN | worker-3 | no brackets', null],
      // the old compiler required the template's backslashes literally; a line never has them
      [String.raw`\[2024-03-05 14:02:11.532\] WARN \| worker-3 \| x`, null],
    ],
  },
  {
    name: 'pipes without spaces (HealthApp)',
    template: String.raw`<Time>\|<Component>\|<Pid>\|<Content>`,
    groups: ['Time', 'Component', 'Pid', 'Content'],
    lines: [
      [
        '20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579',
        {
          Time: '20171223-22:15:29:606',
          Component: 'Step_LSC',
          Pid: '30002312',
          Content: 'onStandStepChanged 3579',
        },
      ],
      ['20171223-22:15:29:606 Step_LSC 30002312 onStandStepChanged', null],
    ],
  },
  {
    name: 'Loghub HDFS',
    template: '<Date> <Time> <Pid> <Level> <Component>: <Content>',
    groups: ['Date', 'Time', 'Pid', 'Level', 'Component', 'Content'],
    lines: [
      [
        '081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating',
        {
          Date: '081109',
          Time: '203615',
          Pid: '148',
          Level: 'INFO',
          Component: 'dfs.DataNode$PacketResponder',
          Content: 'PacketResponder 1 for block blk_38865049064139660 terminating',
        },
      ],
      [
        '081109 204005 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.addStoredBlock: blockMap updated: 10.251.73.220:50010 is added',
        {
          Date: '081109',
          Time: '204005',
          Pid: '35',
          Level: 'INFO',
          Component: 'dfs.FSNamesystem',
          Content: 'BLOCK* NameSystem.addStoredBlock: blockMap updated: 10.251.73.220:50010 is added',
        },
      ],
      ['081109 203615 148 INFO', null],
    ],
  },
  {
    name: 'several spaces (Android)',
    template: '<Date> <Time>  <Pid>  <Tid> <Level> <Component>: <Content>',
    groups: ['Date', 'Time', 'Pid', 'Tid', 'Level', 'Component', 'Content'],
    lines: [
      [
        '03-17 16:13:38.819  1702  8671 D PowerManagerService: acquire lock=233570404, flags=0x1',
        {
          Date: '03-17',
          Time: '16:13:38.819',
          Pid: '1702',
          Tid: '8671',
          Level: 'D',
          Component: 'PowerManagerService',
          Content: 'acquire lock=233570404, flags=0x1',
        },
      ],
      [
        '03-17 16:13:38.819 1702 8671 D PowerManagerService: single spaces',
        {
          Date: '03-17',
          Time: '16:13:38.819',
          Pid: '1702',
          Tid: '8671',
          Level: 'D',
          Component: 'PowerManagerService',
          Content: 'single spaces',
        },
      ],
      [
        '03-17\t16:13:38.819\t 1702\t8671 D PowerManagerService: tabs',
        {
          Date: '03-17',
          Time: '16:13:38.819',
          Pid: '1702',
          Tid: '8671',
          Level: 'D',
          Component: 'PowerManagerService',
          Content: 'tabs',
        },
      ],
      ['03-17 16:13:38.819 1702 D PowerManagerService no colon', null],
    ],
  },
  {
    name: 'wide padding (Windows CBS)',
    template: '<Date> <Time>, <Level>                  <Component>    <Content>',
    groups: ['Date', 'Time', 'Level', 'Component', 'Content'],
    lines: [
      [
        String.raw`2016-09-28 04:30:30, Info                  CBS    Loaded Servicing Stack v6.1.7601.23505 with Core: C:\Windows\winsxs\cbscore.dll`,
        {
          Date: '2016-09-28',
          Time: '04:30:30',
          Level: 'Info',
          Component: 'CBS',
          Content: String.raw`Loaded Servicing Stack v6.1.7601.23505 with Core: C:\Windows\winsxs\cbscore.dll`,
        },
      ],
      ['2016-09-28 04:30:30 Info CBS no comma after the time', null],
    ],
  },
  {
    name: 'optional part with a nested optional (macOS)',
    template: String.raw`<Month> <Day> <Time> <Host> <Proc>(\[<Pid>\]( \(<Sender>\))?)?: <Content>`,
    groups: ['Month', 'Day', 'Time', 'Host', 'Proc', 'Pid', 'Sender', 'Content'],
    lines: [
      [
        'Jul  3 22:14:07 authorMacBook-Pro syslogd[45] (com.apple.xpc.launchd): ASL Sender Statistics',
        {
          Month: 'Jul',
          Day: '3',
          Time: '22:14:07',
          Host: 'authorMacBook-Pro',
          Proc: 'syslogd',
          Pid: '45',
          Sender: 'com.apple.xpc.launchd',
          Content: 'ASL Sender Statistics',
        },
      ],
      [
        'Jul  1 09:00:55 authorMacBook-Pro kernel[0]: IOThunderboltSwitch<0>(0x0)::listenerCallback - unplug = 0',
        {
          Month: 'Jul',
          Day: '1',
          Time: '09:00:55',
          Host: 'authorMacBook-Pro',
          Proc: 'kernel',
          Pid: '0',
          Sender: '',
          Content: 'IOThunderboltSwitch<0>(0x0)::listenerCallback - unplug = 0',
        },
      ],
      [
        'Jul  1 09:00:55 authorMacBook-Pro kernel: no pid',
        {
          Month: 'Jul',
          Day: '1',
          Time: '09:00:55',
          Host: 'authorMacBook-Pro',
          Proc: 'kernel',
          Pid: '',
          Sender: '',
          Content: 'no pid',
        },
      ],
    ],
  },
  {
    name: 'optional part at the end',
    template: String.raw`\[<Time>\] <Level> <Content>( \(<Peer>\))?`,
    groups: ['Time', 'Level', 'Content', 'Peer'],
    lines: [
      [
        '[10:00:01] WARN Connection closed (10.0.0.7)',
        { Time: '10:00:01', Level: 'WARN', Content: 'Connection closed', Peer: '10.0.0.7' },
      ],
      [
        '[10:00:01] WARN Connection closed',
        { Time: '10:00:01', Level: 'WARN', Content: 'Connection closed', Peer: '' },
      ],
      // trailing whitespace on the line does not hide the optional part
      [
        '[10:00:01] WARN Connection closed (10.0.0.7)  ',
        { Time: '10:00:01', Level: 'WARN', Content: 'Connection closed', Peer: '10.0.0.7' },
      ],
      ['10:00:01 WARN Connection closed', null],
    ],
  },
  {
    name: 'last field followed by an optional literal stays lazy',
    template: String.raw`<Level> <Content>( \(retry\))?`,
    groups: ['Level', 'Content'],
    lines: [
      ['WARN link down (retry)', { Level: 'WARN', Content: 'link down' }],
      ['WARN link down', { Level: 'WARN', Content: 'link down' }],
      ['WARN link down (retry later)', { Level: 'WARN', Content: 'link down (retry later)' }],
    ],
  },
  {
    name: 'literal parentheses (no "?")',
    template: '<Proc>(<Pid>): <Content>',
    groups: ['Proc', 'Pid', 'Content'],
    lines: [
      ['sshd(123): Accepted publickey', { Proc: 'sshd', Pid: '123', Content: 'Accepted publickey' }],
      ['sshd: Accepted publickey', null],
      ['sshd[123]: Accepted publickey', null],
    ],
  },
  {
    name: 'escaped metacharacters are literal',
    template: String.raw`<A> \^\$\.\|\?\*\+\(\)\[\]\{\}\\\<\> <B>`,
    groups: ['A', 'B'],
    lines: [
      [String.raw`x ^$.|?*+()[]{}\<> y`, { A: 'x', B: 'y' }],
      [String.raw`x ^$a|?*+()[]{}\<> y`, null],
      [`x ^$.|?*+()[]{}<> y`, null],
    ],
  },
  {
    name: 'unescaped metacharacters other than ( ) are literal',
    template: '<A> ^$.|?*+[]{} <B>',
    groups: ['A', 'B'],
    lines: [
      ['x ^$.|?*+[]{} y', { A: 'x', B: 'y' }],
      ['x ^$a|?*+[]{} y', null],
      ['x  y', null],
    ],
  },
  {
    name: '"<" that does not open a field name is literal',
    template: '<<Pri>><Content>',
    groups: ['Pri', 'Content'],
    lines: [
      [
        '<34>Oct 11 22:14:15 mymachine su: failed',
        { Pri: '34', Content: 'Oct 11 22:14:15 mymachine su: failed' },
      ],
      ['34 Oct 11 22:14:15', null],
    ],
  },
  {
    name: 'surrounding template whitespace is ignored, an escaped space is one space',
    template: String.raw`  <A>\ <B> \[<C>\]  `,
    groups: ['A', 'B', 'C'],
    lines: [
      ['x y [z]', { A: 'x', B: 'y', C: 'z' }],
      ['x  y [z]', { A: 'x', B: ' y', C: 'z' }],
      ['x y [z] \t ', { A: 'x', B: 'y', C: 'z' }],
      ['x y [z] .', null],
    ],
  },
  {
    name: 'a final field keeps trailing whitespace (the loader trims values)',
    template: '<A> <B>',
    groups: ['A', 'B'],
    lines: [
      ['x y  ', { A: 'x', B: 'y  ' }],
      ['x', null],
    ],
  },
];

describe.each(shapes)('template shape: $name', ({ template, groups, lines }) => {
  const compiled = templateToRegex(template);

  it('has one group per field, in order', () => {
    expect(compiled.groups).toEqual(groups);
    expect(compiled.regex).toMatch(/^\^.*\$$/);
  });

  it.each(lines)('%j', async (line, expected) => {
    expect(await duckExtract(line, compiled)).toEqual(expected);
    expect(jsExtract(line, compiled)).toEqual(expected);
  });
});

describe('templateToRegex output', () => {
  it('compiles HDFS to the expected pattern', () => {
    expect(templateToRegex('<Date> <Time> <Pid> <Level> <Component>: <Content>')).toEqual({
      regex: String.raw`^(.*?)[ \t]+(.*?)[ \t]+(.*?)[ \t]+(.*?)[ \t]+(.*?):[ \t]+(.*)$`,
      groups: ['Date', 'Time', 'Pid', 'Level', 'Component', 'Content'],
    });
  });

  it('uses only non-capturing groups for optional parts', () => {
    expect(templateToRegex(String.raw`<Proc>(\[<Pid>\])?: <Content>`).regex).toBe(
      String.raw`^(.*?)(?:\[(.*?)\])?:[ \t]+(.*)$`,
    );
  });

  it('writes control characters as \\xHH', () => {
    expect(templateToRegex('<A>\x01<B>').regex).toBe(String.raw`^(.*?)\x01(.*)$`);
  });
});

describe('multiline records', () => {
  const template = String.raw`<Date> <Time> <Level> \[<Thread>\] <Component> - <Content>`;
  const record = [
    '2024-03-05 14:02:12,001 ERROR [main] com.acme.press.App - Unhandled failure',
    'java.lang.IllegalStateException: spindle offline',
    '\tat com.acme.press.Spindle.start(Spindle.java:42)',
  ].join('\n');

  it('lets the last field take all lines', async () => {
    const compiled = templateToRegex(template, { multiline: true });
    expect(compiled.regex.endsWith(String.raw`[ \t]+-[ \t]+((?s:.*))$`)).toBe(true);
    expect(await duckExtract(record, compiled)).toEqual({
      Date: '2024-03-05',
      Time: '14:02:12,001',
      Level: 'ERROR',
      Thread: 'main',
      Component: 'com.acme.press.App',
      Content: [
        'Unhandled failure',
        'java.lang.IllegalStateException: spindle offline',
        '\tat com.acme.press.Spindle.start(Spindle.java:42)',
      ].join('\n'),
    });
  });

  it('matches a one-line record too', async () => {
    const compiled = templateToRegex(template, { multiline: true });
    expect(await duckExtract('2024-03-05 14:02:12,001 INFO [main] c.a.App - ok', compiled)).toMatchObject({
      Content: 'ok',
    });
  });

  it('does not let the other fields cross lines', async () => {
    const compiled = templateToRegex(template, { multiline: true });
    // the " - " separator is only on the second line
    const split = '2024-03-05 14:02:12,001 ERROR [main] com.acme.press.App\nnext - line';
    expect(await duckExtract(split, compiled)).toBeNull();
  });

  it('without the option a multiline record does not match', async () => {
    expect(await duckExtract(record, templateToRegex(template))).toBeNull();
  });

  it('a lazy last field (optional part after it) also crosses lines', async () => {
    const compiled = templateToRegex(String.raw`<Level> <Content>( \(retry\))?`, { multiline: true });
    expect(await duckExtract('WARN link down\n  port 3 (retry)', compiled)).toEqual({
      Level: 'WARN',
      Content: 'link down\n  port 3',
    });
  });
});

describe('template errors', () => {
  const cases: [string, string, RegExp, number][] = [
    ['unclosed (', String.raw`<Proc>(\[<Pid>\]: <Content>`, /^unbalanced "\(" at 6$/, 6],
    ['unclosed outer ( around a closed one', '<A> ((<B>) <C>', /^unbalanced "\(" at 4$/, 4],
    ['stray )', String.raw`<A> \[<B>\]) <C>`, /^unbalanced "\)" at 11$/, 11],
    ['duplicate field', '<A> <B> <A>', /^duplicate field <A> at 8, already at 0$/, 8],
    [
      'duplicate field ignoring case',
      '<Level> <level>',
      /^duplicate field <level> at 8, already at 0 .*case/,
      8,
    ],
    ['no field', String.raw`\[time\] level`, /^no field: .* at 14\)$/, 14],
    ['empty template', '', /^no field: .* at 0\)$/, 0],
    ['trailing backslash', '<A> \\', /^trailing "\\" at 4 /, 4],
    ['a regex escape', String.raw`<A>\d+ <B>`, /^"\\d" at 3 is a regex escape; templates are not regexes/, 3],
  ];

  it.each(cases)('%s', (_, template, message, position) => {
    let error: unknown;
    try {
      templateToRegex(template);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TemplateError);
    expect((error as TemplateError).message).toMatch(message);
    expect((error as TemplateError).position).toBe(position);
  });
});
