import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { etlText } from '../helpers/etl-local.js';

const rule = (lines: string) =>
  `version: 1\nfactories:\n  plant:\n    name: Plant\n    timezone: Europe/Berlin\n    files:\n${lines}`;

/** Every line is loaded, rejected, blank or a header — never lost. */
function expectAccounted(r: Awaited<ReturnType<typeof etlText>>) {
  const { total, loaded, rejected, blank, header } = r.result.lines;
  expect(loaded + rejected + blank + header).toBe(total);
}

describe('JSON lines', () => {
  it('maps common field names, rejects bad lines with reasons and line numbers', async () => {
    const r = await etlText(
      [
        '{"ts":"2024-01-02T10:00:00Z","device":"p1","metric":"temp","value":21.5,"unit":"C"}',
        '{"ts":1704189600,"device":"p1","metric":"rpm","value":"x"}',
        'not json',
        '',
        '[1,2]',
        '{"ts":"2024-01-02 11:00:00","device":"p2","metric":"temp","value":3}',
        '{"device":"p3","metric":"temp","value":3}',
      ].join('\n'),
      { factory: 'plant', yaml: rule('      []\n').replace('    files:\n      []\n', '') },
    );
    expect(r.rule).toMatchObject({ format: 'jsonl', table: 'readings', detected: true });
    expect(r.readings).toEqual([
      expect.objectContaining({
        ts: '2024-01-02 10:00:00+00',
        device: 'p1',
        metric: 'temp',
        value: 21.5,
        unit: 'C',
        source_line: '1',
      }),
      // naive time in the factory's zone (Europe/Berlin, UTC+1 in January)
      expect.objectContaining({ ts: '2024-01-02 10:00:00+00', device: 'p2', value: 3, source_line: '6' }),
    ]);
    expect(r.rejects).toEqual([
      { source_line: '2', raw: expect.any(String), reason: 'value: rpm is not a number: "x"' },
      { source_line: '3', raw: 'not json', reason: 'invalid JSON' },
      { source_line: '5', raw: '[1,2]', reason: 'not a JSON object (got array)' },
      { source_line: '7', raw: expect.any(String), reason: 'ts: missing' },
    ]);
    expect(r.result.lines).toEqual({ total: 7, loaded: 2, rejected: 4, blank: 1, header: 0 });
  });

  it('turns a wide JSON object into one reading per numeric field', async () => {
    const r = await etlText(
      '{"time":"2024-01-02T10:00:00Z","machine":"m1","temp":20,"rpm":1500}\n{"time":"2024-01-02T10:01:00Z","machine":"m1","temp":21}\n',
    );
    expect(r.readings.map((x) => [x.metric, x.value, x.source_line])).toEqual([
      ['rpm', 1500, '1'],
      ['temp', 20, '1'],
      ['temp', 21, '2'],
    ]);
    expectAccounted(r);
  });

  it('reads events with severity words and extracts codes by pattern', async () => {
    const r = await etlText(
      '{"time":"2024-01-02T10:00:00Z","host":"plc1","level":"FATAL","msg":"E1001 pump failure"}\n{"time":"2024-01-02T10:00:01Z","host":"plc1","level":"w","msg":"slow"}\n',
      { yaml: rule('      - match: "*.log"\n        format: jsonl\n        codePattern: "(E\\\\d+)"\n') },
    );
    expect(r.events.map((e) => [e.severity, e.severity_name, e.code, e.device, e.message])).toEqual([
      [2, 'critical', 'E1001', 'plc1', 'E1001 pump failure'],
      [4, 'warning', null, 'plc1', 'slow'],
    ]);
  });
});

describe('CSV / TSV', () => {
  it.each([
    ['comma', ',', 'timestamp,machine,temp_c,rpm'],
    ['semicolon', ';', 'timestamp;machine;temp_c;rpm'],
    ['tab', '\t', 'timestamp\tmachine\ttemp_c\trpm'],
    ['pipe', '|', 'timestamp|machine|temp_c|rpm'],
  ])('detects the %s delimiter and unpivots wide rows', async (_n, d, header) => {
    const rows = [
      header,
      ['2024-01-02T10:00:00Z', 'm1', '20.5', '1500'].join(d),
      ['2024-01-02T10:01:00Z', 'm2', '21', ''].join(d),
    ];
    const r = await etlText(`${rows.join('\n')}\n`);
    expect(r.rule).toMatchObject({ format: 'csv', csv: { delimiter: d, header: true } });
    expect(r.readings.map((x) => [x.device, x.metric, x.value])).toEqual([
      ['m1', 'rpm', 1500],
      ['m1', 'temp_c', 20.5],
      ['m2', 'temp_c', 21],
    ]);
    expect(r.result.lines).toEqual({ total: 3, loaded: 2, rejected: 0, blank: 0, header: 1 });
  });

  it('handles BOM, CRLF, quoted fields with delimiters and quotes, decimal commas', async () => {
    const csv =
      '\ufefftime;press;temp\r\n2024-01-02 10:00:00;"p;""1""";21,5\r\n2024-01-02 10:01:00;"p2;x";22\r\n2024-01-02 10:02:00;"open\r\n';
    const r = await etlText(csv);
    expect(r.readings.map((x) => [x.device, x.value, x.source_line])).toEqual([
      ['p;"1"', 21.5, '2'],
      ['p2;x', 22, '3'],
    ]);
    expect(r.rejects).toEqual([
      { source_line: '4', raw: '2024-01-02 10:02:00;"open', reason: 'unbalanced quotes' },
    ]);
    expectAccounted(r);
  });

  it('uses declared column names for a file without header', async () => {
    const r = await etlText('1704189600,m1,7.5\n1704189660,m1,8\n', {
      yaml: rule(
        '      - match: "*.log"\n        format: csv\n        header: false\n        columns: [t, device, flow]\n        map: { ts: t }\n        timestamp: { format: epoch_s }\n        wide: { metrics: [flow], units: { flow: "l/min" } }\n',
      ),
    });
    expect(r.readings).toEqual([
      expect.objectContaining({
        ts: '2024-01-02 10:00:00+00',
        device: 'm1',
        metric: 'flow',
        value: 7.5,
        unit: 'l/min',
      }),
      expect.objectContaining({ ts: '2024-01-02 10:01:00+00', value: 8 }),
    ]);
  });

  it('takes the first non-blank line as the header; blank and space-only lines are counted, not parsed', async () => {
    const r = await etlText(
      ' \r\n\nts,device,v\r\n2024-01-02T10:00:00Z,a,1\r\n  \r\n2024-01-02T10:01:00Z,a,2\r\n',
    );
    expect(r.readings.map((x) => [x.source_line, x.metric, x.value])).toEqual([
      ['4', 'v', 1],
      ['6', 'v', 2],
    ]);
    expect(r.result.lines).toEqual({ total: 6, loaded: 2, rejected: 0, blank: 3, header: 1 });
  });

  it('rejects rows with the wrong number of fields, naming the counts', async () => {
    const r = await etlText('ts,device,v\n2024-01-02T10:00:00Z,a,1\n2024-01-02T10:00:00Z,a\n');
    expect(r.rejects).toEqual([
      { source_line: '3', raw: '2024-01-02T10:00:00Z,a', reason: 'expected 3 fields, got 2' },
    ]);
  });
});

describe('syslog', () => {
  it('reads RFC 5424 and RFC 3164 (year from the object, zone from the factory)', async () => {
    const r = await etlText(
      [
        '<165>1 2024-01-02T10:11:12.003+01:00 plc-7 hydraulics 42 ID1 [exampleSDID@32473 iut="3"] E1001 pressure low',
        '<13>Jan  2 10:11:12 plc-8 app[12]: hello',
        '<11>Dec 31 23:59:59 plc-9 app: from last year',
        'garbage',
      ].join('\n'),
      {
        yaml: rule('      - match: "*.log"\n        format: syslog\n        codePattern: "(E\\\\d+)"\n'),
        objectTime: new Date('2024-01-02T12:00:00Z'),
      },
    );
    expect(r.events.map((e) => [e.ts, e.device, e.component, e.severity, e.code, e.message])).toEqual([
      ['2024-01-02 09:11:12.003+00', 'plc-7', 'hydraulics', 5, 'E1001', 'E1001 pressure low'],
      ['2024-01-02 09:11:12+00', 'plc-8', 'app', 5, null, 'hello'],
      ['2023-12-31 22:59:59+00', 'plc-9', 'app', 3, null, 'from last year'],
    ]);
    expect(r.rejects).toEqual([
      { source_line: '4', raw: 'garbage', reason: 'not a syslog line (RFC 5424 or RFC 3164)' },
    ]);
  });
});

describe('free text', () => {
  it('parses a named-field template with a strptime timestamp in local time', async () => {
    const r = await etlText('240102 101112 123 WARN dfs.DataNode: Receiving block E42\nbad line\n', {
      key: 'plant/2024/01/02/controller-press-7.log',
      yaml: rule(
        '      - match: "controller-*.log"\n        format: template\n        template: "<Date> <Time> <Pid> <Level> <Component>: <Content>"\n        timestamp: { format: "%y%m%d %H%M%S" }\n        codePattern: "\\\\b(E\\\\d+)\\\\b"\n        map: { device: { fromKey: "controller-([a-z0-9-]+)\\\\.log" } }\n',
      ),
    });
    expect(r.events).toEqual([
      expect.objectContaining({
        ts: '2024-01-02 09:11:12+00',
        device: 'press-7',
        severity: 4,
        component: 'dfs.DataNode',
        code: 'E42',
        message: 'Receiving block E42',
      }),
    ]);
    expect(r.rejects[0]).toMatchObject({
      source_line: '2',
      reason: expect.stringMatching(/^does not match the pattern/),
    });
    // Attributes hold the groups the mapping does not use.
    expect(JSON.parse(String(r.events[0]?.attributes))).toEqual({ Pid: '123' });
  });

  it('parses a regex with named groups (Python or JS syntax)', async () => {
    const r = await etlText('[2024-01-02 10:00:00] <E> motor: overheat\n', {
      yaml: rule(
        '      - match: "*.log"\n        format: regex\n        pattern: "^\\\\[(?<ts>[^\\\\]]+)\\\\] <(?P<level>\\\\w)> (?<component>\\\\w+): (?<message>.*)$"\n        timestamp: { timezone: UTC }\n',
      ),
    });
    expect(r.events).toEqual([
      expect.objectContaining({
        ts: '2024-01-02 10:00:00+00',
        severity: 3,
        component: 'motor',
        message: 'overheat',
      }),
    ]);
  });
});

describe('timestamps', () => {
  it.each([
    ['ISO 8601 with Z', '2024-01-02T10:00:00Z', 'auto', '2024-01-02 10:00:00+00'],
    ['ISO 8601 with offset', '2024-01-02T12:00:00+02:00', 'auto', '2024-01-02 10:00:00+00'],
    ['naive local (Berlin)', '2024-07-02 12:00:00', 'auto', '2024-07-02 10:00:00+00'],
    ['epoch seconds', '1704189600', 'auto', '2024-01-02 10:00:00+00'],
    ['epoch milliseconds', '1704189600123', 'auto', '2024-01-02 10:00:00.123+00'],
    ['log4j comma millis', '2024-01-02 11:00:00,250', 'auto', '2024-01-02 10:00:00.25+00'],
    ['yyMMdd HHmmss', '240102 110000', '%y%m%d %H%M%S', '2024-01-02 10:00:00+00'],
    ['epoch_ms declared', '1704189600000', 'epoch_ms', '2024-01-02 10:00:00+00'],
    ['ISO 8601 with lower-case z', '2024-01-02T10:00:00z', 'auto', '2024-01-02 10:00:00+00'],
    ['ISO 8601 with compact offset', '2024-01-02T12:00:00+0200', 'auto', '2024-01-02 10:00:00+00'],
    ['epoch seconds with fraction', '1704189600.5', 'auto', '2024-01-02 10:00:00.5+00'],
    ['compact local', '20240102T110000', 'auto', '2024-01-02 10:00:00+00'],
  ])('%s', async (_n, value, format, expected) => {
    const r = await etlText(`{"t":"${value}","device":"d","metric":"m","value":1}\n`, {
      yaml: rule(
        `      - match: "*.log"\n        format: jsonl\n        map: { ts: t }\n        timestamp: { format: "${format}" }\n`,
      ),
    });
    expect(r.readings[0]?.ts).toBe(expected);
  });

  it('rejects an unparseable timestamp naming the value', async () => {
    const r = await etlText('{"ts":"yesterday","device":"d","metric":"m","value":1}\n');
    expect(r.rejects[0]?.reason).toBe('ts: cannot parse timestamp "yesterday"');
  });
});

describe('severity vocabularies', () => {
  it.each([
    ['EMERG', 0],
    ['alert', 1],
    ['CRIT', 2],
    ['fatal', 2],
    ['E', 3],
    ['Error', 3],
    ['WARNING', 4],
    ['w', 4],
    ['notice', 5],
    ['I', 6],
    ['information', 6],
    ['DEBUG', 7],
    ['trace', 7],
    ['[INFO]', 6],
    ['5', 5],
    ['bogus', null],
  ])('%s → %s', async (word, expected) => {
    const r = await etlText(`{"ts":"2024-01-02T10:00:00Z","level":"${word}","message":"m"}\n`);
    expect(r.events[0]?.severity).toBe(expected);
  });
});

describe('output files', () => {
  const day = (d: number) =>
    `{"ts":"2024-01-${String(d).padStart(2, '0')}T10:00:00Z","device":"p","metric":"m","value":${d}}`;

  it('writes one file per UTC month, named after the input object; each row keeps its day', async () => {
    const r = await etlText(`${day(2)}\n${day(3)}\n${day(2)}\nbad\n`);
    expect(r.result.files.map((f) => f.key)).toEqual([
      'normalized/readings/factory=plant/month=2024-01/test.parquet',
      'quarantine/rejects/factory=plant/test.parquet',
    ]);
    expect(r.readings.map((x) => [x.ts, x.source_line])).toEqual([
      ['2024-01-02 10:00:00+00', '1'],
      ['2024-01-03 10:00:00+00', '2'],
      ['2024-01-02 10:00:00+00', '3'],
    ]);
  });

  it('puts each row in its UTC day and month, before 1970 and either side of midnight too', async () => {
    const at = (ts: string, v: number) => `{"ts":"${ts}","device":"p","metric":"m","value":${v}}`;
    const r = await etlText(
      [
        at('1969-12-31T23:59:59.999Z', 1),
        at('1970-01-01T00:00:00Z', 2),
        at('2024-01-02T23:59:59.999999Z', 3),
        at('2024-01-03T00:30:00+01:00', 4),
      ].join('\n'),
      {
        yaml: 'version: 1\nlimits:\n  timestamps:\n    notBefore: "1900-01-01"\nfactories:\n  plant:\n    name: P\n',
      },
    );
    expect(r.result.files.map((f) => f.key.split('/')[3])).toEqual([
      'month=1969-12',
      'month=1970-01',
      'month=2024-01',
    ]);
    expect(r.result.rows.readings).toBe(4);
  });

  it('a file spanning many days is one object per month, every row once', async () => {
    const days = Array.from({ length: 20 }, (_, i) => i + 1);
    const r = await etlText(`${days.map(day).join('\n')}\n`);
    // (The test's batches are tiny: an object per batch, all of them in January.)
    const keys = r.result.files.map((f) => f.key);
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys)
      expect(k).toMatch(/^normalized\/readings\/factory=plant\/month=2024-01\/test(-\d+)?\.parquet$/);
    expect(r.readings.map((x) => x.value)).toEqual(days);
    expect(r.result.rows.readings).toBe(20);
  });

  it('a file spanning years is one object per month (a partitioned write beyond 8), every row once', async () => {
    // One reading on the 1st of each month for 30 months.
    const lines = Array.from({ length: 30 }, (_, i) => {
      const at = new Date(Date.UTC(2022, i, 1, 12)).toISOString();
      return `{"ts":"${at}","device":"p","metric":"m","value":${i}}`;
    });
    const r = await etlText(`${lines.join('\n')}\n`);
    const keys = r.result.files.map((f) => f.key).sort();
    expect(keys).toHaveLength(30);
    expect(keys[0]).toMatch(/^normalized\/readings\/factory=plant\/month=2022-01\/test[^/]*\.parquet$/);
    expect(keys.at(-1)).toMatch(/\/month=2024-06\//);
    expect(r.readings.map((x) => x.value).sort((a, b) => Number(a) - Number(b))).toEqual(
      lines.map((_, i) => i),
    );
  });
});

describe('edge cases found in review', () => {
  it('trims spaces, including Unicode ones, from field values, and an all-space value is missing', async () => {
    const r = await etlText(
      [
        '{"ts":" 2024-01-02T10:00:00Z ","device":" p1 ","metric":"temp\u00a0","value":" 1.5 ","unit":"\u3000C"}',
        '{"ts":"2024-01-02T10:00:00Z","device":"\u2003","metric":"temp","value":2}',
        '{"ts":"2024-01-02T10:00:00Z","device":"Düsseldorf-1","metric":"temp","value":3}',
      ].join('\n'),
    );
    expect(r.readings.map((x) => [x.device, x.metric, x.value, x.unit])).toEqual([
      ['p1', 'temp', 1.5, 'C'],
      ['Düsseldorf-1', 'temp', 3, null],
    ]);
    expect(r.rejects).toEqual([{ source_line: '2', raw: expect.any(String), reason: 'device: missing' }]);
  });

  it('a CSV header the byte pass rejects is counted as rejected, and no data row is taken for a header', async () => {
    const csv = Buffer.concat([
      Buffer.from('ts,device,temp'),
      Buffer.from([0xb0]), // Latin-1 degree sign: invalid UTF-8
      Buffer.from('C\n2024-01-02T10:00:00Z,d1,1\n2024-01-02T10:00:01Z,d1,2\n'),
    ]);
    const r = await etlText(csv, {
      yaml: rule('      - match: "*.log"\n        format: csv\n        header: true\n'),
    });
    expect(r.result.lines.header).toBe(0);
    expect(r.rejects[0]).toMatchObject({ source_line: '1', reason: expect.stringMatching(/^invalid UTF-8/) });
    expectAccounted(r);
  });

  it('only ASCII spaces make a line blank, in the byte pass and in SQL alike', async () => {
    const r = await etlText(
      ' \u00a0\n{"ts":"2024-01-02T10:00:00Z","device":"p","metric":"m","value":1}\n{"ts":"2024-01-02T10:00:00Z","device":"p","metric":"m","value":2}\n',
      { yaml: rule('      - match: "*.log"\n        format: jsonl\n') },
    );
    expect(r.result.lines).toEqual({ total: 3, loaded: 2, rejected: 1, blank: 0, header: 0 });
    expect(r.rejects[0]).toMatchObject({ source_line: '1', reason: 'invalid JSON' });
  });

  it('a regex that matches the empty string still matches', async () => {
    const r = await etlText('abc\n', {
      yaml: rule(
        '      - match: "*.log"\n        format: regex\n        pattern: "(?P<code>\\\\d*)"\n        map: { ts: { const: "2024-01-02T10:00:00Z" } }\n',
      ),
    });
    expect(r.result.lines).toMatchObject({ loaded: 1, rejected: 0 });
    expect(r.events[0]).toMatchObject({ message: 'abc', code: null });
  });
});

describe('batches', () => {
  it('processes a file larger than a batch in batches: every line once, numbered, outputs named per batch', async () => {
    // The test splitter writes 64-byte chunks, so a batch (16 chunks) is about 1 KB: this file makes several.
    const lines = Array.from({ length: 120 }, (_, i) =>
      i % 25 === 24
        ? `broken ${i + 1}`
        : `{"ts":"2024-01-02T10:${String(i % 60).padStart(2, '0')}:00Z","device":"p","metric":"m","value":${i + 1}}`,
    );
    const r = await etlText(`${lines.join('\n')}\n`);
    const names = r.result.files.filter((f) => f.kind === 'readings').map((f) => f.key);
    expect(names.length).toBeGreaterThan(3);
    expect(names[0]).toBe('normalized/readings/factory=plant/month=2024-01/test.parquet');
    expect(names.slice(1)).toEqual(
      names.slice(1).map((_, b) => `normalized/readings/factory=plant/month=2024-01/test-${b + 1}.parquet`),
    );
    expect(r.result.lines).toEqual({ total: 120, loaded: 116, rejected: 4, blank: 0, header: 0 });
    expect(r.readings.map((x) => Number(x.source_line))).toEqual(
      lines.map((_, i) => i + 1).filter((n) => n % 25 !== 0),
    );
    expect(r.readings.map((x) => x.value)).toEqual(r.readings.map((x) => Number(x.source_line)));
    expect(r.rejects.map((x) => [x.source_line, x.reason])).toEqual(
      [25, 50, 75, 100].map((n) => [String(n), 'invalid JSON']),
    );
    expect(r.result.rows.readings).toBe(116);
    expect(r.result.minTs).toBe('2024-01-02T10:00:00.000Z');
    expect(r.result.maxTs).toBe('2024-01-02T10:59:00.000Z');
  });
});

describe('bad input', () => {
  it('gzip is not this layer (the ETL decompresses first): gzip bytes reaching it are a binary object', async () => {
    await expect(etlText(gzipSync('a\n'))).rejects.toThrow('not normalized: binary');
  });

  it('a file of nothing but garbage has every line rejected and accounted for', async () => {
    const r = await etlText('???\n!!!\n...\n');
    expect(r.result.lines).toMatchObject({ total: 3, loaded: 0, rejected: 3 });
  });
});

describe('timestamp reject reasons', () => {
  it('an out-of-range offset is named as such; a day-month-year date is not mistaken for one', async () => {
    const r = await etlText(
      'ts,device,v\n2024-01-02T10:00:00+25:00,a,1\n2024-01-02T10:00:00+05:61,a,2\n05-03-2024,a,3\n2024-01-02T10:00:00+14:00,a,4\n',
    );
    expect(r.rejects.map((x) => [x.source_line, x.reason])).toEqual([
      ['2', 'ts: UTC offset out of range (beyond ±14:00) in "2024-01-02T10:00:00+25:00"'],
      ['3', 'ts: UTC offset out of range (beyond ±14:00) in "2024-01-02T10:00:00+05:61"'],
      ['4', 'ts: cannot parse timestamp "05-03-2024"'],
    ]);
    expect(r.readings.map((x) => x.ts)).toEqual(['2024-01-01 20:00:00+00']);
  });
});

describe('year-less timestamps', () => {
  it('runs of spaces in a year-less stamp (`Jan  2`) are read, with the key date giving the year', async () => {
    const line = (ts: string) => `{"ts":"${ts}","device":"d","metric":"m","value":1}`;
    const r = await etlText(
      [line('Jan  2 10:00:00'), line('Jan 12 10:00:00'), line('Dec 31 23:00:00')].join('\n'),
      {
        key: 'plant/2023/01/12/pump.jsonl',
        yaml: 'version: 1\nfactories:\n  plant:\n    name: P\n    files:\n      - match: "*.jsonl"\n        format: jsonl\n        timestamp: { format: "%b %d %H:%M:%S" }\n',
      },
    );
    expect(r.readings.map((e) => e.ts)).toEqual([
      '2023-01-02 10:00:00+00',
      '2023-01-12 10:00:00+00',
      '2022-12-31 23:00:00+00',
    ]);
  });
});

describe('rejects spread over batches', () => {
  it('keep a rejects file per batch (not merged in memory), and one for the byte pass; every reject once', async () => {
    // 64-byte chunks, 8 to a batch: these 120 lines make several batches, each with rejects.
    const lines = Array.from({ length: 120 }, (_, i) =>
      i % 10 === 9
        ? `broken ${i + 1}`
        : `{"ts":"2024-01-02T10:${String(i % 60).padStart(2, '0')}:00Z","device":"p","metric":"m","value":${i}}`,
    );
    const body = Buffer.concat([Buffer.from(`${lines.join('\n')}\n`), Buffer.from([0xff, 0xfe, 0x0a])]);
    const r = await etlText(body);
    const keys = r.result.files.filter((f) => f.kind === 'rejects').map((f) => f.key);
    expect(keys.length).toBeGreaterThan(2);
    expect(keys).toContain('quarantine/rejects/factory=plant/test-lines.parquet');
    expect(r.rejects.map((x) => Number(x.source_line))).toEqual([
      ...Array.from({ length: 12 }, (_, k) => 10 * (k + 1)),
      121,
    ]);
    expect(r.result.lines).toEqual({ total: 121, loaded: 108, rejected: 13, blank: 0, header: 0 });
  });
});
