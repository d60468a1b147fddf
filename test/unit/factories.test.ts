import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../functions/core/errors.js';
import {
  accountingFactory,
  loadFactories,
  parseFactories,
  ruleForKey,
} from '../../functions/etl/factories.js';
import { routesFor } from '../../topology/topology.js';

const root = join(import.meta.dirname, '..', '..');

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
    ['invalid YAML', 'version: 1\nfactories: [\n', /invalid YAML/],
    ['a missing version', 'factories: {}\n', /version/],
  ])('rejects %s with the file and path', (_name, text, message) => {
    expect(() => parseFactories(text, 'conf/factories.yaml')).toThrowError(ConfigError);
    expect(() => parseFactories(text, 'conf/factories.yaml')).toThrowError(/^conf\/factories\.yaml: /);
    expect(() => parseFactories(text, 'conf/factories.yaml')).toThrowError(message);
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
    expect(routesFor('warehouse', 'telemetry.duckdb', 'ObjectCreated:Put')).toEqual([]);
  });
});
