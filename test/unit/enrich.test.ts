import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bundledReference,
  parseDevices,
  parseErrorCodes,
  SHIPPED_CONFIG_DIR,
} from '../../functions/contracts/reference.js';
import { connectUtc } from '../../functions/core/duckdb.js';
import {
  enrichEvents,
  enrichReadings,
  loadReference,
  writeParts,
} from '../../functions/enrich/enrich-file.js';

let dir: string;
let c: DuckDBConnection;
const settings = { anomalyThreshold: 4, baselineMinSamples: 5, baselineDays: 7 };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'enrich-'));
  c = await connectUtc(await DuckDBInstance.create(':memory:'));
  await loadReference(c, {
    devices: parseDevices(
      'version: 1\ndevices:\n  - { factory: f, device: press-01, model: M1, line: L1, site: S, criticality: high, commissioned: 2020-01-01 }\n',
      'devices.yaml',
    ),
    errorCodes: parseErrorCodes(
      'version: 1\ncodes:\n  - { code: E1001, category: hydraulics, severity: error, description: low pressure, action: check pump }\n',
      'codes.yaml',
    ),
    sources: { devices: 'test', errorCodes: 'test' },
  });
});
afterAll(async () => {
  c.closeSync();
  await rm(dir, { recursive: true, force: true });
});

async function readingsFile(name: string, rows: [string, number][]): Promise<string> {
  const path = join(dir, name);
  const values = rows.map(
    ([device, v], i) =>
      `(TIMESTAMPTZ '2024-01-02 10:00:00+00' + INTERVAL ${i} MINUTE, 'f', '${device}', 'temp', ${v}, 'C', 'f/x.jsonl', ${i + 1}, '2024-01-02')`,
  );
  await c.run(`COPY (SELECT * FROM (VALUES ${values.join(', ')}) t(ts, factory, device, metric, value, unit, source_key, source_line, date))
    TO '${path}' (FORMAT parquet)`);
  return path;
}

async function read(path: string, columns: string) {
  return (
    await c.runAndReadAll(`SELECT ${columns} FROM read_parquet('${path}') ORDER BY source_line`)
  ).getRowObjectsJson();
}

describe('enrichReadings', () => {
  const values = [8, 9, 10, 11, 12, 10, 9, 11, 10, 30];

  it("flags outliers against the file's own median/MAD when there is no history, and joins the registry", async () => {
    const path = await readingsFile('a.parquet', [
      ...values.map((v) => ['press-01', v] as [string, number]),
      ['ghost', 1],
    ]);
    const out = join(dir, 'a-out.parquet');
    const stats = await enrichReadings(c, { paths: [path], sourceETag: 'etag-1', settings });
    await writeParts(c, [out], dir);
    // median 10, MAD 1 ⇒ 30 scores 20 / 1.4826 = 13.49 > 4; 12 scores 1.35.
    expect(stats).toEqual({ rows: 11, unknownDevices: 1, unknownCodes: 0, anomalies: 1 });
    const rows = await read(
      out,
      'device, value, model, criticality, baseline_median, baseline_mad, round(anomaly_score, 2) AS z, is_anomaly, source_etag',
    );
    expect(rows[9]).toEqual({
      device: 'press-01',
      value: 30,
      model: 'M1',
      criticality: 'high',
      baseline_median: 10,
      baseline_mad: 1,
      z: 13.49,
      is_anomaly: true,
      source_etag: 'etag-1',
    });
    expect(rows[4]).toMatchObject({ value: 12, z: 1.35, is_anomaly: false });
    // Unknown device: kept, enrichment columns empty, too few samples for a baseline.
    expect(rows[10]).toEqual({
      device: 'ghost',
      value: 1,
      model: null,
      criticality: null,
      baseline_median: null,
      baseline_mad: null,
      z: null,
      is_anomaly: false,
      source_etag: 'etag-1',
    });
  });

  it('prefers the warehouse history when it has enough samples', async () => {
    const path = await readingsFile(
      'b.parquet',
      values.map((v) => ['press-01', v]),
    );
    const baselines = join(dir, 'baselines.parquet');
    await c.run(
      `COPY (SELECT 'f' AS factory, 'press-01' AS device, 'temp' AS metric, 100::BIGINT AS n, 20.0 AS median, 1.0 AS mad) TO '${baselines}' (FORMAT parquet)`,
    );
    const out = join(dir, 'b-out.parquet');
    const stats = await enrichReadings(c, {
      paths: [path],
      sourceETag: 'e',
      baselinesPath: baselines,
      settings,
    });
    await writeParts(c, [out], dir);
    // Against median 20 / MAD 1: |x − 20| > 4 × 1.4826 = 5.93 ⇒ 8, 9 (×2), 10 (×3), 11 (×2), 12 and 30 are all out.
    expect(stats.anomalies).toBe(10);
    const rows = await read(out, 'value, round(anomaly_score, 2) AS z');
    expect(rows.find((r) => r.value === 30)).toEqual({ value: 30, z: 6.74 });
  });
});

describe('enrichEvents', () => {
  it('joins the catalogue, keeps unknown codes and devices, and scores severity', async () => {
    const path = join(dir, 'events.parquet');
    await c.run(`COPY (SELECT * FROM (VALUES
        (TIMESTAMPTZ '2024-01-02 10:00:00+00', 'f', 'press-01', 6::TINYINT, 'info', 'E1001', 'hyd', 'E1001 low', '{}'::JSON, 'f/x.log', 1, '2024-01-02'),
        (TIMESTAMPTZ '2024-01-02 10:01:00+00', 'f', 'ghost', 4::TINYINT, 'warning', 'X9', 'io', 'X9 odd', '{}'::JSON, 'f/x.log', 2, '2024-01-02'))
      t(ts, factory, device, severity, severity_name, code, component, message, attributes, source_key, source_line, date))
      TO '${path}' (FORMAT parquet)`);
    const out = join(dir, 'events-out.parquet');
    const stats = await enrichEvents(c, { paths: [path], sourceETag: 'e' });
    await writeParts(c, [out], dir);
    expect(stats).toEqual({ rows: 2, unknownDevices: 1, unknownCodes: 1, anomalies: 0 });
    const rows = await read(
      out,
      'device, code, category, recommended_action, code_severity, effective_severity, severity_score, model',
    );
    // E1001's default (3, error) beats the event's own info (6); high criticality weighs 0.85: 100·4/7·0.85 = 49.
    expect(rows[0]).toEqual({
      device: 'press-01',
      code: 'E1001',
      category: 'hydraulics',
      recommended_action: 'check pump',
      code_severity: 3,
      effective_severity: 3,
      severity_score: 49,
      model: 'M1',
    });
    // Unknown device counts as medium (0.7): 100·3/7·0.7 = 30.
    expect(rows[1]).toEqual({
      device: 'ghost',
      code: 'X9',
      category: null,
      recommended_action: null,
      code_severity: null,
      effective_severity: 4,
      severity_score: 30,
      model: null,
    });
  });
});

describe('reference data validation', () => {
  it.each([
    [
      'a duplicate device',
      () =>
        parseDevices(
          'version: 1\ndevices:\n  - { factory: f, device: d, model: m, line: l, site: s, criticality: low, commissioned: 2020-01-01 }\n  - { factory: f, device: d, model: m, line: l, site: s, criticality: low, commissioned: 2020-01-01 }\n',
          'd.yaml',
        ),
      /d\.yaml: device f\/d is listed twice/,
    ],
    [
      'a bad criticality',
      () =>
        parseDevices(
          'version: 1\ndevices:\n  - { factory: f, device: d, model: m, line: l, site: s, criticality: extreme, commissioned: 2020-01-01 }\n',
          'd.yaml',
        ),
      /devices\[0\]\.criticality/,
    ],
    [
      'an unknown severity word',
      () =>
        parseErrorCodes(
          'version: 1\ncodes:\n  - { code: E1, category: c, severity: meh, description: d, action: a }\n',
          'c.yaml',
        ),
      /unknown severity "meh"/,
    ],
  ])('rejects %s with the file and path', (_n, fn, message) => {
    expect(fn).toThrowError(message);
  });
});

describe('reference data beside factories.yaml', () => {
  it('a config folder with only factories.yaml uses the shipped registry and catalogue; with none anywhere, empty lists', async () => {
    const only = await mkdtemp(join(tmpdir(), 'config-only-'));
    const empty = await mkdtemp(join(tmpdir(), 'config-empty-'));
    try {
      await writeFile(join(only, 'factories.yaml'), 'version: 1\nfactories: {}\n');
      const shipped = bundledReference(only);
      expect(shipped.devices.length).toBeGreaterThan(0);
      expect(shipped.errorCodes.length).toBeGreaterThan(0);
      expect(shipped.from.devices).toBe(join(SHIPPED_CONFIG_DIR, 'devices.yaml'));
      const none = bundledReference(only, empty);
      expect(none).toEqual({ devices: [], errorCodes: [], from: { devices: 'none', errorCodes: 'none' } });
      // A file that is there but broken is still an error naming it.
      await writeFile(join(only, 'devices.yaml'), 'version: 1\ndevices: [{ factory: a }]\n');
      expect(() => bundledReference(only)).toThrowError(/devices\.yaml: invalid reference data/);
    } finally {
      await rm(only, { recursive: true, force: true });
      await rm(empty, { recursive: true, force: true });
    }
  });
});
