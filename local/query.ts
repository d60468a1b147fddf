import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import Table from 'cli-table3';
import type { SandboxedReader } from '../functions/warehouse/query-sandbox.js';
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
 * GETs, cached under the data folder) and runs the SQL against them, read-only, in the query process
 * (its limits hold whatever the SQL calls); stops that process when done, so the CLI exits. The
 * writer's copies are never opened.
 */
export async function runQuery(sql: string, format: QueryFormat): Promise<string> {
  const settings = localSettings();
  exportFunctionEnv(settings, {});
  try {
    const result = await queryLocal(sql);
    return formatRows(result.columns, result.rows, format);
  } finally {
    await closeLocalQueries();
  }
}

/** This process's reader of the local query cache: one query process, started at the first query. */
let local: Promise<{ reader: SandboxedReader; bucket: string }> | undefined;

async function openLocal(dir: string): Promise<{ reader: SandboxedReader; bucket: string }> {
  const { runtimeConfig } = await import('../functions/core/config.js');
  const { SandboxedReader } = await import('../functions/warehouse/query-sandbox.js');
  await mkdir(dir, { recursive: true });
  const bucket = runtimeConfig.buckets.warehouse;
  return { reader: new SandboxedReader(bucket, dir), bucket };
}

/**
 * Runs SQL on fresh read-only copies of the warehouse from the configured S3 endpoint, in the query
 * process (kept for the next query; it does not keep this process running). The function environment
 * (endpoint, credentials) must already be exported.
 */
export async function queryLocal(
  sql: string,
): Promise<{ columns: string[]; rows: Record<string, unknown>[] }> {
  const settings = localSettings();
  const { QueryError } = await import('../functions/warehouse/query.js');
  local ??= openLocal(join(settings.PIPELINE_DATA, 'query-cache'));
  const { reader, bucket } = await local;
  const result = await reader.query(sql).catch((err: Error) => {
    if (err instanceof QueryError) throw err;
    throw new Error(
      `cannot read the warehouse in s3://${bucket} at ${settings.s3Endpoint} (is \`npm start\` running?): ${err.message}`,
    );
  });
  if (!result) throw new Error(`no warehouse yet in s3://${bucket}: upload a file and wait for it to load`);
  return result;
}

/** Stops the query process, if one was started. */
export async function closeLocalQueries(): Promise<void> {
  const open = local;
  local = undefined;
  if (open) await (await open).reader.close();
}
