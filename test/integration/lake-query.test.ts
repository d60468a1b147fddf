import { CopyObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAKE_TABLES } from '../../functions/contracts/lake-tables.js';
import { joinLines, jsonlReadings } from '../../local/demo-data.js';
import { runCli } from '../helpers/cli.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

/**
 * `telemetry-pipeline query --engine lake`: the same SQL over the whole lake, under the table names the
 * Glue catalogue gives Athena deployed, answered with DuckDB over the lake bucket's objects.
 */
const PORTS = { S3_PORT: '35000', SQS_PORT: '35324', RUNTIME_PORT: '35300' };
let stack: TestStack;
let keys: string[];

beforeAll(async () => {
  stack = await startTestStack({ ...PORTS, RECONCILE_INTERVAL_SECONDS: '3600' });
  const { seedDemo } = await import('../../local/demo.js');
  keys = await seedDemo(stack.runtime.s3, new Date('2026-03-10T00:00:00Z'));
  // And a file spanning two months, with two bad lines.
  const span = 'demo/2026/03/10/backfill.jsonl';
  await stack.put(
    span,
    joinLines(
      jsonlReadings({
        seed: 7,
        lines: 600,
        start: new Date('2026-01-20T00:00:00Z'),
        stepMs: 3_600_000,
        badEvery: 300,
      }),
    ),
  );
  keys.push(span);
  await stack.waitForWarehouse(keys, 120_000);
}, 180_000);
afterAll(async () => {
  const { closeLocalQueries } = await import('../../local/query.js');
  await closeLocalQueries();
  await stack?.stop();
});

const count = async (rows: Record<string, unknown>[]) => Number(rows[0]?.n);

describe('query --engine lake', () => {
  it('gives the warehouse’s counts for the demo data, table by table, with the month partition', async () => {
    const { queryWholeLake } = await import('../../local/query.js');
    const lake = async (sql: string) => (await queryWholeLake(sql)).rows;
    // An object of the layout before month partitions: outside Athena's projection, and so here too.
    const [one] = await stack.list('lake', 'enriched/readings/factory=demo/month=');
    await stack.runtime.s3.send(
      new CopyObjectCommand({
        Bucket: 'lake',
        Key: 'enriched/readings/factory=demo/date=2026-03-10/legacy.parquet',
        CopySource: `lake/${one!.key}`,
      }),
    );
    for (const [lakeSql, warehouseSql] of [
      ['SELECT count(*) AS n FROM readings', 'SELECT count(*) AS n FROM readings'],
      ['SELECT count(*) AS n FROM events', 'SELECT count(*) AS n FROM events'],
      ['SELECT count(*) AS n FROM rejects', 'SELECT count(*) AS n FROM rejects'],
      ['SELECT count(*) AS n FROM manifests', 'SELECT count(*) AS n FROM manifests'],
      ['SELECT count(*) AS n FROM normalized_readings', 'SELECT count(*) AS n FROM readings'],
      [
        'SELECT count(*) AS n FROM readings WHERE is_anomaly',
        'SELECT count(*) AS n FROM readings WHERE is_anomaly',
      ],
    ]) {
      const expected = await count(await stack.queryWarehouse(warehouseSql!));
      expect(await count(await lake(lakeSql!)), lakeSql).toBe(expected);
    }
    expect(await count(await lake('SELECT count(*) AS n FROM readings'))).toBeGreaterThan(600);
    // Each table has the Glue table's columns, in its order, and nothing else; the manifests' fields
    // match case-insensitively, as the Ion SerDe matches them deployed.
    for (const table of LAKE_TABLES) {
      const { columns } = await queryWholeLake(`SELECT * FROM ${table.name} LIMIT 1`);
      expect(columns, table.name).toEqual([...table.columns.map((c) => c.name), ...table.partitions]);
    }
    const [m] = await lake(
      "SELECT startedat, source.createdat AS created, lines.total AS total FROM manifests WHERE source.key LIKE '%backfill%'",
    );
    expect(m).toMatchObject({ total: '600' });
    // Strings as the manifests hold them (ISO 8601), as Athena returns them.
    expect(String(m!.created)).toMatch(/^2026-\d\d-\d\dT\d\d:\d\d:\d\d/);
    expect(String(m!.startedat)).toMatch(/^20\d\d-\d\d-\d\dT/);
    // Partition columns as Athena has them: factory and month.
    expect(
      await lake(
        "SELECT month, count(*) AS n FROM readings WHERE factory = 'demo' AND source_key LIKE '%backfill%' GROUP BY 1 ORDER BY 1",
      ),
    ).toEqual([
      // Hourly from January 20: 12 days of January (288 hours), the rest in February less its two bad lines.
      { month: '2026-01', n: '288' },
      { month: '2026-02', n: '310' },
    ]);
  });

  it('copies each object once, and shuts the query in to its cache', async () => {
    const { queryWholeLake } = await import('../../local/query.js');
    const { syncLake } = await import('../../local/lake-query.js');
    const { localSettings } = await import('../../local/settings.js');
    const { join } = await import('node:path');
    const source = { bucket: 'lake', dir: join(localSettings().PIPELINE_DATA, 'lake-cache') };
    const again = await syncLake(source);
    expect(again.downloaded).toBe(0);
    expect(again.objects).toBeGreaterThan(keys.length);
    await expect(queryWholeLake("SELECT * FROM read_csv('/etc/passwd')")).rejects.toThrow(/Permission Error/);
    await expect(queryWholeLake('CREATE TABLE x AS SELECT 1')).rejects.toThrow(/only queries that read/);
    await expect(queryWholeLake('SET enable_external_access = true')).rejects.toThrow();
  });

  it('answers through the real CLI, as a table or JSON', async () => {
    const env = { ...PORTS, PIPELINE_DATA: stack.data };
    const run = await runCli(
      ['query', '--engine', 'lake', '--json', 'select count(*) as n from events'],
      env,
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const [events] = await stack.queryWarehouse('SELECT count(*) AS n FROM events');
    expect(JSON.parse(run.stdout)).toEqual([{ n: Number(events!.n) }]);
    const wrong = await runCli(['query', '--engine', 'athena', 'select 1'], env);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain("'athena' is invalid. Allowed choices are warehouse, lake");
  });
});
