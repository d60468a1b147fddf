import { DuckDBInstance } from '@duckdb/node-api';
import { connectUtc } from '../core/duckdb.js';

export interface QueryResult {
  columns: string[];
  rows: Record<string, unknown>[];
}

/** A query that DuckDB refused: the message is DuckDB's own (it names the table, column or token). */
export class QueryError extends Error {
  override name = 'QueryError';
}

/**
 * Runs one SQL statement against a warehouse file opened READ_ONLY — a downloaded copy, never the
 * writer's. Values come back JSON-safe (BIGINT as string where it would lose precision).
 */
export async function queryWarehouse(path: string, sql: string): Promise<QueryResult> {
  // Read-only, and no access to files, network or extensions from SQL (no read_csv('/etc/…'), no
  // COPY TO); locked so a query cannot SET it back.
  const instance = await DuckDBInstance.create(path, {
    access_mode: 'READ_ONLY',
    enable_external_access: 'false',
  });
  try {
    const c = await connectUtc(instance);
    try {
      await c.run('SET lock_configuration = true');
      const reader = await c.runAndReadAll(sql).catch((err: Error) => {
        throw new QueryError(err.message, { cause: err });
      });
      return { columns: reader.columnNames(), rows: reader.getRowObjectsJson() as Record<string, unknown>[] };
    } finally {
      c.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}
