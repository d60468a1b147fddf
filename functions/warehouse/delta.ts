import type { DuckDBConnection } from '@duckdb/node-api';
import { openDuckDB, sqlString, withConnection } from '../core/duckdb.js';
import { deltaTables, deltaViews, META, TABLE_NAMES, TABLES, type TableName, VIEWS } from './schema.js';

/**
 * The warehouse as two DuckDB files (docs/architecture.md, "Warehouse files"): the base, written only
 * by a compaction, and the delta, rewritten by every batch. A batch costs what its rows cost, not what
 * the warehouse holds: the base stays as it is, and only the delta is uploaded.
 */

/** When the delta is folded into the base: it has reached `minBytes` and `baseFraction` of the base. */
export interface CompactionPolicy {
  minBytes: number;
  baseFraction: number;
}

/**
 * At these values a base upload is paid once per quarter of its size appended (amortized: each
 * appended byte is uploaded at most ≈ 5 times), and a batch uploads at most a quarter of the base.
 */
export const COMPACTION: CompactionPolicy = { minBytes: 64 * 1024 * 1024, baseFraction: 0.25 };

export function shouldCompact(deltaBytes: number, baseBytes: number, policy: CompactionPolicy): boolean {
  return deltaBytes >= Math.max(policy.minBytes, baseBytes * policy.baseFraction);
}

async function value(c: DuckDBConnection, sql: string): Promise<unknown> {
  return (await c.runAndReadAll(sql)).getRows()[0]?.[0];
}

/** The generation a file's `warehouse_meta` records; a base written before there were deltas is 0. */
export async function generationOf(c: DuckDBConnection, catalog: string): Promise<number> {
  const has = await value(
    c,
    `SELECT count(*) FROM duckdb_tables() WHERE database_name = ${sqlString(catalog)} AND schema_name = 'main' AND table_name = 'warehouse_meta'`,
  );
  if (Number(has) === 0) return 0;
  const table = `"${catalog.replace(/"/g, '""')}".main.warehouse_meta`;
  return Number((await value(c, `SELECT max(generation) FROM ${table}`)) ?? 0);
}

/** A new, empty base file: generation 0. */
export async function createBase(path: string): Promise<void> {
  const instance = await openDuckDB(path);
  try {
    await withConnection(instance, async (c) => {
      for (const ddl of [...TABLES, META, ...VIEWS]) await c.run(ddl);
      await c.run('INSERT INTO warehouse_meta VALUES (0)');
      await c.run('CHECKPOINT');
    });
  } finally {
    instance.closeSync();
  }
}

/**
 * Deletes the rows of table `t` that match `where`: added rows are deleted, base rows are marked removed
 * by rowid (the base file does not change until a compaction, so its rowids hold until then).
 */
export async function removeRows(
  c: DuckDBConnection,
  t: TableName,
  where: string,
  values?: Record<string, string>,
): Promise<void> {
  await c.run(`DELETE FROM added.${t} WHERE ${where}`, values);
  await c.run(
    `INSERT INTO removed.${t} SELECT rowid FROM base.main.${t}
     WHERE (${where}) AND rowid NOT IN (SELECT rid FROM removed.${t})`,
    values,
  );
}

/**
 * Opens the delta file at `deltaPath` (created if missing) with the base attached read-only as `base`,
 * and runs `body` in one transaction. Reads go through the views (`readings`, `ledger`, …: base and
 * delta together); writes go to `added.<t>` or through `removeRows`. A delta written for an older
 * generation of the base was already folded into it (a compaction that stopped before resetting the
 * delta): it is emptied first. Returns the base generation.
 */
export async function writeDelta(
  deltaPath: string,
  basePath: string,
  body: (c: DuckDBConnection) => Promise<void>,
): Promise<number> {
  const instance = await openDuckDB(deltaPath);
  try {
    return await withConnection(instance, async (c) => {
      await c.run(`ATTACH ${sqlString(basePath)} AS base (READ_ONLY)`);
      const generation = await generationOf(c, 'base');
      for (const ddl of deltaTables()) await c.run(ddl);
      const own = await value(c, 'SELECT max(generation) FROM main.warehouse_meta');
      if (own === null || own === undefined || Number(own) !== generation) {
        for (const t of TABLE_NAMES) {
          await c.run(`DELETE FROM added.${t}`);
          await c.run(`DELETE FROM removed.${t}`);
        }
        await c.run('DELETE FROM main.warehouse_meta');
        await c.run(`INSERT INTO main.warehouse_meta VALUES (${generation})`);
      }
      // While writing, every view subtracts the removed rows: the batch reads its own deletions.
      for (const view of deltaViews()) await c.run(view);
      await c.run('BEGIN TRANSACTION');
      await body(c);
      await c.run('COMMIT');
      // For readers, only tables with removed rows pay for the anti-join.
      const pruned = new Set<TableName>();
      for (const t of TABLE_NAMES) {
        if (Number(await value(c, `SELECT count(*) FROM removed.${t}`)) === 0) pruned.add(t);
      }
      for (const view of deltaViews(pruned)) await c.run(view);
      await c.run('CHECKPOINT');
      return generation;
    });
  } finally {
    instance.closeSync();
  }
}

/**
 * Folds the delta into the base copy at `basePath`: removed rows deleted, added rows appended, the
 * generation raised. The caller uploads the base, then a fresh delta for the new generation.
 */
export async function foldDelta(basePath: string, deltaPath: string): Promise<void> {
  const instance = await openDuckDB(basePath);
  try {
    await withConnection(instance, async (c) => {
      for (const ddl of [...TABLES, META]) await c.run(ddl);
      await c.run(`ATTACH ${sqlString(deltaPath)} AS delta (READ_ONLY)`);
      const generation = await generationOf(c, String(await value(c, 'SELECT current_database()')));
      const applies = await generationOf(c, 'delta');
      if (applies !== generation) {
        throw new Error(`the delta applies to generation ${applies} of the base, which is at ${generation}`);
      }
      await c.run('BEGIN TRANSACTION');
      for (const t of TABLE_NAMES) {
        await c.run(`DELETE FROM main.${t} WHERE rowid IN (SELECT rid FROM delta.removed.${t})`);
        await c.run(`INSERT INTO main.${t} BY NAME SELECT * FROM delta.added.${t}`);
      }
      await c.run('DELETE FROM main.warehouse_meta');
      await c.run(`INSERT INTO main.warehouse_meta VALUES (${generation + 1})`);
      for (const view of VIEWS) await c.run(view);
      await c.run('COMMIT');
      await c.run('DETACH delta');
      await c.run('CHECKPOINT');
    });
  } finally {
    instance.closeSync();
  }
}
