import { createHash } from 'node:crypto';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { openDuckDB, sqlString, withConnection } from '../core/duckdb.js';
import { logger } from '../core/logger.js';
import {
  addColumnSql,
  CANONICAL_TABLES,
  DECLARED,
  type Declarations,
  deltaTables,
  deltaViews,
  META,
  missingColumns,
  TABLE_NAMES,
  TABLES,
  type TableName,
  tableViews,
  VIEWS,
} from './schema.js';

/**
 * The warehouse as DuckDB files (docs/architecture.md, "Warehouse files"): immutable bases, each
 * written once by a compaction, and the delta, rewritten by every batch, which names its base. A batch
 * costs what its rows cost, not what the warehouse holds: only the delta is uploaded.
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

/** Which base a delta applies to (in both files' `warehouse_meta`; a base records its own). */
export interface BaseRef {
  generation: number;
  baseKey: string;
}

async function value(c: DuckDBConnection, sql: string): Promise<unknown> {
  return (await c.runAndReadAll(sql)).getRows()[0]?.[0];
}

/**
 * The `warehouse_meta` row of the database `catalog` (default: the one opened). A base from before
 * there were deltas has none: it is generation 0 under the key it was fetched by (`legacyKey`).
 */
export async function baseRefOf(c: DuckDBConnection, catalog?: string, legacyKey?: string): Promise<BaseRef> {
  const table =
    catalog === undefined ? 'main.warehouse_meta' : `"${catalog.replace(/"/g, '""')}".main.warehouse_meta`;
  const rows = await c.runAndReadAll(`SELECT generation, base_key FROM ${table}`).then(
    (r) => r.getRows(),
    (err: Error) => {
      if (legacyKey !== undefined && /does not exist/.test(err.message)) return [];
      throw err;
    },
  );
  const row = rows[0] ?? (legacyKey === undefined ? undefined : [0, legacyKey]);
  if (!row) throw new Error(`${catalog ?? 'the warehouse file'}: warehouse_meta is empty`);
  return { generation: Number(row[0]), baseKey: String(row[1]) };
}

/** The base a delta file names. */
export async function readBaseRef(deltaPath: string): Promise<BaseRef> {
  const instance = await DuckDBInstance.create(deltaPath, { access_mode: 'READ_ONLY' });
  try {
    const c = await instance.connect();
    try {
      return await baseRefOf(c);
    } finally {
      c.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}

export function digest(parts: readonly string[]): string {
  return createHash('sha256').update(parts.join('\0')).digest('hex');
}

/** What the writer keeps between batches in the delta, beside the rows. */
export interface DeltaState {
  /** Digest of the reference data last written (`refreshReference` is skipped while it matches). */
  reference: string | null;
}

async function setMeta(c: DuckDBConnection, ref: BaseRef): Promise<void> {
  await c.run('DELETE FROM main.warehouse_meta');
  await c.run(`INSERT INTO main.warehouse_meta VALUES (${ref.generation}, ${sqlString(ref.baseKey)})`);
}

/** A new, empty base file. */
export async function createBase(path: string, ref: BaseRef): Promise<void> {
  const instance = await openDuckDB(path);
  try {
    await withConnection(instance, async (c) => {
      for (const ddl of [...TABLES, META, ...VIEWS]) await c.run(ddl);
      await setMeta(c, ref);
      await c.run('CHECKPOINT');
    });
  } finally {
    instance.closeSync();
  }
}

/**
 * Gives the canonical tables in `schema` of the opened database every declared column they lack — the
 * warehouse's one migration, so a column needs nothing but its declaration in contracts/tables.ts.
 * Returns what it added (`schema.table.column`); when nothing is missing no DDL runs, and an
 * up-to-date file is left as it was. Tables the schema does not have are left to their CREATE (which
 * has every column).
 *
 * Where it runs: on the delta's `added.<t>` at every batch (they are created from the base, so from
 * one made before a column was declared they lack it), and on a compaction's new base before the
 * delta is folded in (`foldDelta`). A base in the store is never changed: until the next compaction
 * its rows lack the new columns, and the views (`tableViews`) read them by name, NULL there.
 */
export async function addMissingColumns(
  c: DuckDBConnection,
  schema: string,
  declared: Declarations = DECLARED,
): Promise<string[]> {
  const rows = (
    await c.runAndReadAll(
      `SELECT table_name, lower(column_name) FROM duckdb_columns()
       WHERE database_name = current_database() AND schema_name = $schema`,
      { schema },
    )
  ).getRows();
  const existing = new Map<string, Set<string>>();
  for (const [table, column] of rows) {
    const names = existing.get(String(table)) ?? new Set<string>();
    names.add(String(column));
    existing.set(String(table), names);
  }
  const added: string[] = [];
  for (const t of CANONICAL_TABLES) {
    const has = existing.get(t);
    if (!has) continue;
    for (const column of missingColumns(t, has, declared)) {
      await c.run(addColumnSql(`${schema}.${t}`, column));
      added.push(`${schema}.${t}.${column.name}`);
    }
  }
  if (added.length > 0) logger.info({ columns: added }, 'warehouse tables gained their declared columns');
  return added;
}

/**
 * Deletes the rows of table `t` that match `where`: added rows are deleted, base rows are marked removed
 * by rowid (a base file never changes, so its rowids hold).
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
 * Opens the delta file at `deltaPath` (created for `ref` if missing) with the base `ref` names attached
 * read-only as `base`, and runs `body` in one transaction. Reads go through per-session views
 * (`readings`, `ledger`, …: base and delta together, less what the batch removed); writes go to
 * `added.<t>` or through `removeRows`. `body` may update the state it is given.
 */
export async function writeDelta(
  deltaPath: string,
  basePath: string,
  ref: BaseRef,
  body: (c: DuckDBConnection, state: DeltaState) => Promise<void>,
  declared: Declarations = DECLARED,
): Promise<DeltaState> {
  // Smaller blocks: the delta is uploaded whole after every batch, and with 256 KB blocks it was 3 MB
  // for a few hundred rows (1.3 MB at 64 KB; 16 KB blocks compress large tables 3× worse).
  const instance = await openDuckDB(deltaPath, { default_block_size: '65536' });
  try {
    return await withConnection(instance, async (c) => {
      await c.run(`ATTACH ${sqlString(basePath)} AS base (READ_ONLY)`);
      for (const ddl of deltaTables()) await c.run(ddl);
      // Outside the batch's transaction, like the CREATEs above: a failed batch discards the whole
      // working copy, and the rows loaded below need the columns.
      const migrated = await addMissingColumns(c, 'added', declared);
      const own = await value(c, 'SELECT count(*) FROM main.warehouse_meta');
      if (Number(own) === 0) await setMeta(c, ref);
      const [mine, theirs] = [await baseRefOf(c, 'base', ref.baseKey), await baseRefOf(c)];
      if (mine.baseKey !== ref.baseKey || theirs.baseKey !== ref.baseKey) {
        throw new Error(
          `the delta names base ${theirs.baseKey}, the attached base is ${mine.baseKey}, expected ${ref.baseKey}`,
        );
      }
      const saved = (await c.runAndReadAll('SELECT views, reference FROM main.delta_state')).getRows()[0];
      const state: DeltaState = { reference: saved?.[1] === undefined ? null : (saved[1] as string | null) };
      // The batch reads through temporary views (the session's own, ahead of the file's in the search
      // path) that always subtract removed rows: it sees its own deletions.
      for (const view of tableViews(new Set(), 'TEMP', declared)) await c.run(view);
      await c.run('BEGIN TRANSACTION');
      await body(c, state);
      // The file's views, for readers: rewritten only when they change (a table has its first removed
      // rows, a new delta, a new release, a column added), and only tables with removed rows pay for
      // the anti-join. Their text names the declared columns, so a new declaration changes the digest;
      // columns added also force it, as a stored view over a table that gained one no longer binds.
      const removed = (
        await c.runAndReadAll(
          TABLE_NAMES.map((t) => `SELECT '${t}' AS t, count(*) AS n FROM removed.${t}`).join(' UNION ALL '),
        )
      ).getRows();
      const pruned = new Set(removed.filter(([, n]) => Number(n) === 0).map(([t]) => t as TableName));
      const views = deltaViews(pruned, declared);
      const viewsDigest = digest(views);
      if (saved?.[0] !== viewsDigest || migrated.length > 0) for (const view of views) await c.run(view);
      await c.run('DELETE FROM main.delta_state');
      await c.run(
        `INSERT INTO main.delta_state VALUES (${sqlString(viewsDigest)}, ${state.reference === null ? 'NULL' : sqlString(state.reference)})`,
      );
      await c.run('COMMIT');
      await c.run('CHECKPOINT');
      return state;
    });
  } finally {
    instance.closeSync();
  }
}

/**
 * The order a compaction appends the data tables' rows to the new base in: by factory and UTC day,
 * then by series. DuckDB keeps min/max per row group of ~122,880 rows, so in a base made of such runs
 * a query for one device's metric, or for a factory's hours, reads only the row groups that can hold
 * its rows — the read API's queries on a 10M-row base read a fraction of it (`npm run bench`, "Read
 * API"). Only the appended rows are sorted (at most the delta, a quarter of the base): the rows
 * already in the base stay where the last compaction put them.
 */
export const CLUSTER_ORDER = {
  readings: 'factory, date, device, metric, ts',
  events: 'factory, date, device, ts',
} as const;

/**
 * Folds the delta into the base copy at `basePath` (modified in place): removed rows deleted, added
 * rows appended (the data tables' in CLUSTER_ORDER), `warehouse_meta` set to `next`. The caller uploads it under `next.baseKey`, then an
 * empty delta naming it. The new base has every declared column (`addMissingColumns`): a base written
 * before a column was declared gains it here, and its rows read NULL in it.
 *
 * Not one transaction: DuckDB refuses to commit an ALTER of a table the same transaction deleted from,
 * and the deletes must come first — the removed rowids are those of the base as written, and nothing
 * promises that ADD COLUMN keeps rowids. Half-way states are never seen: the copy is uploaded only
 * once this returns, and `compact` drops the copy when it fails.
 */
export async function foldDelta(
  basePath: string,
  deltaPath: string,
  next: BaseRef,
  declared: Declarations = DECLARED,
): Promise<void> {
  const instance = await openDuckDB(basePath);
  try {
    await withConnection(instance, async (c) => {
      for (const ddl of [...TABLES, META]) await c.run(ddl);
      await c.run(`ATTACH ${sqlString(deltaPath)} AS delta (READ_ONLY)`);
      const delta = await baseRefOf(c, 'delta');
      const base = await baseRefOf(c, undefined, delta.baseKey);
      if (base.baseKey !== delta.baseKey) {
        throw new Error(`the delta applies to base ${delta.baseKey}, not to ${base.baseKey}`);
      }
      await c.run('BEGIN TRANSACTION');
      for (const t of TABLE_NAMES) {
        await c.run(`DELETE FROM main.${t} WHERE rowid IN (SELECT rid FROM delta.removed.${t})`);
      }
      await c.run('COMMIT');
      await addMissingColumns(c, 'main', declared);
      await c.run('BEGIN TRANSACTION');
      // By name: `added.<t>` of a delta from before a column was declared lacks it (NULL here).
      for (const t of TABLE_NAMES) {
        const order = CLUSTER_ORDER[t as keyof typeof CLUSTER_ORDER];
        await c.run(
          `INSERT INTO main.${t} BY NAME SELECT * FROM delta.added.${t}${order ? ` ORDER BY ${order}` : ''}`,
        );
      }
      await setMeta(c, next);
      for (const view of VIEWS) await c.run(view);
      await c.run('COMMIT');
      await c.run('DETACH delta');
      await c.run('CHECKPOINT');
    });
  } finally {
    instance.closeSync();
  }
}
