import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadFactories, parseFactories, ruleForKey } from '../../functions/contracts/factories.js';
import { accountingFactory } from '../../functions/contracts/keys.js';
import { ConfigError } from '../../functions/core/errors.js';
import { routesFor } from '../../topology/topology.js';

const root = join(import.meta.dirname, '..', '..');
/** A factory `a` with one rule; a case appends the rule's other keys. */
const RULE = 'version: 1\nfactories:\n  a:\n    name: A\n    files:\n      - match: x\n';

describe('factories.yaml', () => {
  it('the shipped config loads and has the demo factory', () => {
    const config = loadFactories(join(root, 'config'));
    expect(config.factories.get('demo')).toMatchObject({ timezone: 'Europe/Berlin' });
  });

  it.each([
    ['an unknown key (typo)', 'version: 1\nfactories:\n  a:\n    name: A\n    timezon: UTC\n', /timezon/],
    [
      'a bad time zone',
      'version: 1\nfactories:\n  a:\n    name: A\n    timezone: Mars/Base\n',
      /not an IANA time zone[\s\S]*factories\.a\.timezone/,
    ],
    ['a bad factory id', 'version: 1\nfactories:\n  Bad_Id:\n    name: A\n', /factories\.Bad_Id/],
    [
      'an unknown format',
      'version: 1\nfactories:\n  a:\n    name: A\n    files:\n      - match: x\n        format: xml\n',
      /factories\.a\.files\[0\]\.format/,
    ],
    [
      'an invalid regex',
      'version: 1\nfactories:\n  a:\n    name: A\n    files:\n      - match: x\n        format: regex\n        pattern: "(unclosed"\n',
      /factories\.a\.files\[0\]\.pattern: invalid regex/,
    ],
    [
      'a regex with an unnamed group',
      `${RULE}        format: regex\n        pattern: '^(?<ts>\\S+) (\\w+) (?<message>.*)$'\n`,
      /factories\.a\.files\[0\]\.pattern: has 3 capture groups but 2 named ones/,
    ],
    [
      'a regex with no named group',
      `${RULE}        format: regex\n        pattern: '^.*$'\n`,
      /pattern: has no named group/,
    ],
    [
      'a look-ahead (RE2 has none)',
      `${RULE}        format: regex\n        pattern: '^(?<m>a(?=b))'\n`,
      /files\[0\]\.pattern: "\(\?=" \(look-around or back-reference\) is not supported by RE2/,
    ],
    [
      'a codePattern without one group',
      `${RULE}        format: auto\n        codePattern: 'E\\d+'\n`,
      /files\[0\]\.codePattern: needs exactly one capture group, has 0/,
    ],
    [
      'a fromKey with two groups',
      `${RULE}        format: auto\n        map: { device: { fromKey: '(a)(b)' } }\n`,
      /files\[0\]\.map\.device\.fromKey: needs exactly one capture group, has 2/,
    ],
    [
      'a bad multiline start',
      `${RULE}        format: auto\n        multiline: { start: '[' }\n`,
      /files\[0\]\.multiline\.start: invalid regex/,
    ],
    [
      'a template that does not compile',
      `${RULE}        format: template\n        template: '<A> (<B>'\n`,
      /files\[0\]\.template: unbalanced "\(" at 4/,
    ],
    [
      'a plausible window that is not a date',
      'version: 1\nlimits:\n  timestamps:\n    notBefore: yesterday\nfactories: {}\n',
      /limits\.timestamps\.notBefore/,
    ],
    ['invalid YAML', 'version: 1\nfactories: [\n', /invalid YAML/],
    ['a missing version', 'factories: {}\n', /version/],
  ])('rejects %s with the file and path', (_name, text, message) => {
    expect(() => parseFactories(text, 'conf/factories.yaml')).toThrowError(ConfigError);
    expect(() => parseFactories(text, 'conf/factories.yaml')).toThrowError(/^conf\/factories\.yaml: /);
    expect(() => parseFactories(text, 'conf/factories.yaml')).toThrowError(message);
  });

  it('limits have defaults: a reject ratio of 0.5 and a window from 1970 to a day after the object', () => {
    expect(parseFactories('version: 1\nfactories: {}\n', 'f.yaml').limits).toEqual({
      maxRejectRatio: 0.5,
      timestamps: { notBefore: '1970-01-01', maxAheadHours: 24 },
    });
  });

  it('a missing config path is a ConfigError naming it', () => {
    expect(() => loadFactories('/nonexistent/config')).toThrowError(
      /\/nonexistent\/config: config path does not exist/,
    );
  });

  it('picks the first rule whose glob fits the file name, ignoring .gz', () => {
    const config = parseFactories(
      'version: 1\nfactories:\n  a:\n    name: A\n    files:\n      - { match: "*.csv", format: csv }\n      - { match: "logs/**/*.log", format: syslog }\n      - { match: ["*.jsonl", "*.ndjson"], format: jsonl }\n',
      'f.yaml',
    );
    const a = config.factories.get('a')!;
    expect(ruleForKey(a, 'a/2024/01/02/x.csv.gz')?.format).toBe('csv');
    expect(ruleForKey(a, 'a/logs/2024/x.log')?.format).toBe('syslog');
    expect(ruleForKey(a, 'a/2024/x.log')).toBeUndefined();
    expect(ruleForKey(a, 'a/2024/x.ndjson')?.format).toBe('jsonl');
  });

  it.each([
    ['plant-1/2024/x.log', 'plant-1'],
    ['x.log', 'unassigned'],
    ['Bad Plant/x.log', 'unassigned'],
  ])('accounts %s under factory %s', (key, factory) => {
    expect(accountingFactory(key)).toBe(factory);
  });
});

describe('topology routes', () => {
  it('routes raw ObjectCreated (AWS or MinIO naming) to etl, nothing else', () => {
    expect(routesFor('raw', 'a/b.log', 'ObjectCreated:Put').map((r) => r.queue)).toEqual(['etl']);
    expect(
      routesFor('raw', 'a/b.log', 's3:ObjectCreated:CompleteMultipartUpload').map((r) => r.queue),
    ).toEqual(['etl']);
    expect(routesFor('raw', 'a/b.log', 'ObjectRemoved:Delete')).toEqual([]);
    expect(routesFor('warehouse', 'telemetry-delta.duckdb', 'ObjectCreated:Put')).toEqual([]);
  });
});

describe('fetch sources', () => {
  it.each([
    [
      'a plain-text password',
      '      - { id: s, type: sftp, host: h, user: u, password: hunter2 }\n',
      /sources\[0\]\.password/,
    ],
    [
      'sftp without credentials',
      '      - { id: s, type: sftp, host: h, user: u }\n',
      /sftp needs password or privateKey/,
    ],
    [
      'a duplicate source id',
      '      - { id: s, type: s3, bucket: b }\n      - { id: s, type: s3, bucket: c }\n',
      /"s" is used twice/,
    ],
    [
      'a bad cron',
      "      - { id: s, type: s3, bucket: b, schedule: 'every day' }\n",
      /not a cron expression/,
    ],
    [
      'a malformed host key pin',
      '      - { id: s, type: sftp, host: h, user: u, password: { secret: P }, hostKey: md5 }\n',
      /SHA256:<base64>/,
    ],
    [
      'delete after fetch over http',
      "      - { id: s, type: http, url: 'http://h/files', afterFetch: delete }\n",
      /not supported for http/,
    ],
  ])('rejects %s', (_n, sources, message) => {
    expect(() =>
      parseFactories(`version: 1\nfactories:\n  a:\n    name: A\n    sources:\n${sources}`, 'f.yaml'),
    ).toThrowError(message);
  });
});

describe('remote names become safe raw keys', () => {
  it.each([
    ['plain.log', 'f/2024/05/06/plain.log'],
    ['../../etc/passwd', 'f/2024/05/06/etc/passwd'],
    ['/abs/path/x.log', 'f/2024/05/06/abs/path/x.log'],
    ['a\u0000b\u001f\u007fc.log', 'f/2024/05/06/abc.log'],
    ['dir\\..\\x.log', 'f/2024/05/06/dir/x.log'],
    ['..', 'f/2024/05/06/unnamed'],
    ['we?ird*na|me.log', 'f/2024/05/06/we_ird_na_me.log'],
  ])('%j → %s', async (remote, key) => {
    const { fetchedKey } = await import('../../functions/fetch/remote-keys.js');
    expect(fetchedKey('f', new Date('2024-05-06T12:00:00Z'), remote)).toBe(key);
  });
});

describe('schedule', () => {
  it('enqueues enabled sources whose cron is due, in the factory time zone', async () => {
    const { dueSources } = await import('../../functions/fetch/due-sources.js');
    const config = parseFactories(
      `version: 1\nfactories:\n  a:\n    name: A\n    timezone: Europe/Berlin\n    sources:\n      - { id: hourly, type: s3, bucket: b, schedule: '0 * * * *' }\n      - { id: nine, type: s3, bucket: b, schedule: '0 9 * * *' }\n      - { id: off, type: s3, bucket: b, schedule: '* * * * *', enabled: false }\n`,
      'f.yaml',
    );
    // 08:00:20 UTC = 09:00 in Berlin (CET)
    expect(dueSources(config, new Date('2024-01-02T08:00:20Z')).map((m) => m.source)).toEqual([
      'hourly',
      'nine',
    ]);
    expect(dueSources(config, new Date('2024-01-02T08:30:00Z'))).toEqual([]);
  });

  it('turns EventBridge Scheduler expressions into cron patterns for the local runtime', async () => {
    const { schedulerToCron } = await import('../../local/scheduler.js');
    expect(schedulerToCron('rate(1 minute)')).toBe('* * * * *');
    expect(schedulerToCron('rate(15 minutes)')).toBe('*/15 * * * *');
    expect(schedulerToCron('rate(2 hours)')).toBe('0 */2 * * *');
    expect(schedulerToCron('cron(0/10 8-17 ? * MON-FRI *)')).toBe('0-59/10 8-17 * * MON-FRI');
    expect(() => schedulerToCron('every minute')).toThrow(/not a scheduler expression/);
  });
});
