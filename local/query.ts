import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Table from 'cli-table3';
import { exportFunctionEnv, localSettings } from './settings.js';

export type QueryFormat = 'table' | 'json' | 'csv';

function csvField(v: unknown): string {
  const s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Renders rows for the terminal (table), or for scripts (JSON array, RFC 4180 CSV). */
export function formatRows(columns: string[], rows: Record<string, unknown>[], format: QueryFormat): string {
  if (format === 'json') return `${JSON.stringify(rows, null, 2)}\n`;
  if (format === 'csv') {
    return `${[columns.map(csvField).join(','), ...rows.map((r) => columns.map((c) => csvField(r[c])).join(','))].join('\r\n')}\r\n`;
  }
  const table = new Table({ head: columns, style: { head: [], border: [] } });
  for (const r of rows)
    table.push(
      columns.map((c) =>
        r[c] === null ? 'NULL' : typeof r[c] === 'object' ? JSON.stringify(r[c]) : String(r[c]),
      ),
    );
  return `${table.toString()}\n(${rows.length} row${rows.length === 1 ? '' : 's'})\n`;
}

/**
 * `telemetry-pipeline query`: downloads the current warehouse file (cached by ETag under the data
 * folder) and runs the SQL against that copy, read-only. The writer's copy is never opened.
 */
export async function runQuery(sql: string, format: QueryFormat): Promise<string> {
  const settings = localSettings();
  exportFunctionEnv(settings, {});
  const result = await queryLocal(sql);
  return formatRows(result.columns, result.rows, format);
}

/**
 * Runs SQL on a fresh read-only copy of the warehouse from the configured S3 endpoint. The function
 * environment (endpoint, credentials) must already be exported.
 */
export async function queryLocal(
  sql: string,
): Promise<{ columns: string[]; rows: Record<string, unknown>[] }> {
  const settings = localSettings();
  const { downloadIfChanged } = await import('../functions/core/s3.js');
  const { runtimeConfig } = await import('../functions/core/config.js');
  const { queryWarehouse } = await import('../functions/warehouse/query.js');
  const { WAREHOUSE_KEY } = await import('../functions/warehouse/warehouse-file.js');
  const dir = join(settings.PIPELINE_DATA, 'query-cache');
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'telemetry.duckdb');
  const marker = `${path}.etag`;
  const cached = await readFile(marker, 'utf8').catch(() => undefined);
  const eTag = await downloadIfChanged(runtimeConfig.buckets.warehouse, WAREHOUSE_KEY, path, cached).catch(
    (err: Error) => {
      throw new Error(
        `cannot read s3://${runtimeConfig.buckets.warehouse}/${WAREHOUSE_KEY} at ${settings.s3Endpoint} (is \`npm start\` running?): ${err.message}`,
      );
    },
  );
  if (!eTag)
    throw new Error(
      `no warehouse yet at s3://${runtimeConfig.buckets.warehouse}/${WAREHOUSE_KEY}: upload a file and wait for it to load`,
    );
  await writeFile(marker, eTag);
  return queryWarehouse(path, sql);
}
