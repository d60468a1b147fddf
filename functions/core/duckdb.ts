import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { runtimeConfig } from './config.js';

/** A string literal for SQL. Used only where DuckDB takes no bound parameter (COPY targets, options). */
export function sqlString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** A quoted identifier. */
export function sqlIdent(value: string): string {
  return `"${value.replace(/"/g, '""')}"`;
}

/**
 * Opens a DuckDB database (`:memory:` by default) configured for Lambda: home and temp directories
 * under /tmp (the only writable place there) and no extension auto-install
 * (httpfs and friends would download at run time; json, parquet and icu are built in).
 */
export async function openDuckDB(
  path = ':memory:',
  options: Record<string, string> = {},
): Promise<DuckDBInstance> {
  const home = join(runtimeConfig.tmpDir, 'duckdb-home');
  const temp = join(runtimeConfig.tmpDir, 'duckdb-temp');
  mkdirSync(home, { recursive: true });
  mkdirSync(temp, { recursive: true });
  return DuckDBInstance.create(path, {
    home_directory: home,
    temp_directory: temp,
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'true',
    // DuckDB sizes itself from the host's memory; a Lambda's limit is lower than what it sees.
    ...(runtimeConfig.duckdbMemoryLimit ? { memory_limit: runtimeConfig.duckdbMemoryLimit } : {}),
    ...options,
  });
}

/** Runs `fn` with a fresh connection and always releases it. */
export async function withConnection<T>(
  instance: DuckDBInstance,
  fn: (c: DuckDBConnection) => Promise<T>,
): Promise<T> {
  const connection = await connectUtc(instance);
  try {
    return await fn(connection);
  } finally {
    connection.closeSync();
  }
}

/** A connection whose session time zone is UTC, whatever the host's (ICU is loaded after start-up). */
export async function connectUtc(instance: DuckDBInstance): Promise<DuckDBConnection> {
  const connection = await instance.connect();
  await connection.run("SET TimeZone = 'UTC'");
  return connection;
}
