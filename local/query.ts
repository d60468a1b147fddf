import { mkdir } from 'node:fs/promises';
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
 * `telemetry-pipeline query`: brings the local copies of the warehouse files up to date (conditional
 * GETs, cached under the data folder) and runs the SQL against them, read-only. The writer's copies are
 * never opened.
 */
export async function runQuery(sql: string, format: QueryFormat): Promise<string> {
  const settings = localSettings();
  exportFunctionEnv(settings, {});
  const result = await queryLocal(sql);
  return formatRows(result.columns, result.rows, format);
}

/**
 * Runs SQL on fresh read-only copies of the warehouse from the configured S3 endpoint. The function
 * environment (endpoint, credentials) must already be exported.
 */
export async function queryLocal(
  sql: string,
): Promise<{ columns: string[]; rows: Record<string, unknown>[] }> {
  const settings = localSettings();
  const { runtimeConfig } = await import('../functions/core/config.js');
  const { WarehouseReader, QueryError } = await import('../functions/warehouse/query.js');
  const bucket = runtimeConfig.buckets.warehouse;
  const dir = join(settings.PIPELINE_DATA, 'query-cache');
  await mkdir(dir, { recursive: true });
  const result = await new WarehouseReader(bucket, dir).query(sql).catch((err: Error) => {
    if (err instanceof QueryError) throw err;
    throw new Error(
      `cannot read the warehouse in s3://${bucket} at ${settings.s3Endpoint} (is \`npm start\` running?): ${err.message}`,
    );
  });
  if (!result) throw new Error(`no warehouse yet in s3://${bucket}: upload a file and wait for it to load`);
  return result;
}
