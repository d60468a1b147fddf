import { createHash } from 'node:crypto';
import { copyFile } from 'node:fs/promises';
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
  META_L1,
  missingColumns,
  RETIRED,
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

/**
 * When the delta and the level-1 file are folded into a new base: together they have reached
 * `minBytes` and `baseFraction` of the base. Before that, the delta is folded into a new level-1 file
 * whenever it reaches `deltaMaxBytes` and `l1Fraction` of the level-1 file.
 */
export interface CompactionPolicy {
  minBytes: number;
  baseFraction: number;
  deltaMaxBytes?: number;
  l1Fraction?: number;
}

/**
 * At these values a base upload is paid once per quarter of its size appended (each appended byte is
 * uploaded at most ≈ 5 times in bases), a level-1 upload once per eighth of its size appended (at most
 * ≈ 9 times in level-1 files), and a commit uploads a delta of at most 8 MB — or an eighth of the
 * level-1 file, a thirty-second of the base, in a warehouse of more than 2 GB.
 */
export const COMPACTION: CompactionPolicy = {
  minBytes: 64 * 1024 * 1024,
  baseFraction: 0.25,
  deltaMaxBytes: 8 * 1024 * 1024,
  l1Fraction: 0.125,
};

/** What is due after a commit: a new base, a new level-1 file, or nothing. */
export function compactionDue(
  sizes: { delta: number; l1: number; base: number },
  policy: CompactionPolicy,
): 'base' | 'l1' | 'none' {
  if (sizes.delta + sizes.l1 >= Math.max(policy.minBytes, sizes.base * policy.baseFraction)) return 'base';
  const l1Due = Math.max(
    policy.deltaMaxBytes ?? Number.POSITIVE_INFINITY,
    sizes.l1 * (policy.l1Fraction ?? 0),
  );
  return sizes.delta >= l1Due ? 'l1' : 'none';
}

/**
 * Which base a delta applies to, and which level-1 file (the rows folded out of earlier deltas), in
 * the delta's `warehouse_meta`; a base or level-1 file records its base.
 */
export interface BaseRef {
  generation: number;
  baseKey: string;
  l1Key?: string;
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
  // `*`: files written before level-1 files have no `l1_key`.
  const rows = await c.runAndReadAll(`SELECT * FROM ${table}`).then(
    (r) => r.getRowObjectsJS(),
    (err: Error) => {
      if (legacyKey !== undefined && /does not exist/.test(err.message)) return [];
      throw err;
    },
  );
  const row = rows[0] ?? (legacyKey === undefined ? undefined : { generation: 0, base_key: legacyKey });
  if (!row) throw new Error(`${catalog ?? 'the warehouse file'}: warehouse_meta is empty`);
  const l1 = row.l1_key;
  return {
    generation: Number(row.generation),
    baseKey: String(row.base_key),
    ...(typeof l1 === 'string' ? { l1Key: l1 } : {}),
  };
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
  await c.run(META_L1);
  await c.run('DELETE FROM main.warehouse_meta');
  await c.run(
    `INSERT INTO main.warehouse_meta (generation, base_key, l1_key) VALUES (${ref.generation}, ${sqlString(ref.baseKey)}, ${ref.l1Key ? sqlString(ref.l1Key) : 'NULL'})`,
  );
}

/** Connections with a level-1 file attached as `l1` (removals then reach its rows too). */
const withL1 = new WeakSet<DuckDBConnection>();

/** A new, empty base file. */
export async function createBase(path: string, ref: BaseRef): Promise<void> {
  const instance = await openDuckDB(path);
  try {
    await withConnection(instance, async (c) => {
      for (const ddl of [...TABLES, META, ...VIEWS]) await c.run(ddl);
      await setMeta(c, { generation: ref.generation, baseKey: ref.baseKey });
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
  const l1 = withL1.has(c);
  await c.run(`DELETE FROM added.${t} WHERE ${where}`, values);
  await c.run(
    `INSERT INTO removed.${t} SELECT rowid FROM base.main.${t}
     WHERE (${where}) AND rowid NOT IN (SELECT rid FROM removed.${t})${l1 ? ` AND rowid NOT IN (SELECT rid FROM l1.removed.${t})` : ''}`,
    values,
  );
  if (l1) {
    // A level-1 file never changes either: its added rows are marked removed by rowid, like the base's.
    await c.run(
      `INSERT INTO removed_l1.${t} SELECT rowid FROM l1.added.${t}
       WHERE (${where}) AND rowid NOT IN (SELECT rid FROM removed_l1.${t})`,
      values,
    );
  }
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
  l1Path?: string,
): Promise<DeltaState> {
  if (ref.l1Key && !l1Path) throw new Error(`the delta names level-1 file ${ref.l1Key}: no copy given`);
  // Smaller blocks: the delta is uploaded whole after every batch, and with 256 KB blocks it was 3 MB
  // for a few hundred rows (1.3 MB at 64 KB; 16 KB blocks compress large tables 3× worse).
  const instance = await openDuckDB(deltaPath, { default_block_size: '65536' });
  try {
    return await withConnection(instance, async (c) => {
      await c.run(`ATTACH ${sqlString(basePath)} AS base (READ_ONLY)`);
      const l1 = ref.l1Key !== undefined;
      if (l1) {
        await c.run(`ATTACH ${sqlString(l1Path!)} AS l1 (READ_ONLY)`);
        withL1.add(c);
        const over = await baseRefOf(c, 'l1');
        if (over.baseKey !== ref.baseKey) {
          throw new Error(`level-1 file ${ref.l1Key} is over base ${over.baseKey}, expected ${ref.baseKey}`);
        }
      }
      for (const ddl of deltaTables()) await c.run(ddl);
      // Outside the batch's transaction, like the CREATEs above: a failed batch discards the whole
      // working copy, and the rows loaded below need the columns.
      const migrated = await addMissingColumns(c, 'added', declared);
      const own = await value(c, 'SELECT count(*) FROM main.warehouse_meta');
      if (Number(own) === 0) await setMeta(c, ref);
      const [mine, theirs] = [await baseRefOf(c, 'base', ref.baseKey), await baseRefOf(c)];
      if (mine.baseKey !== ref.baseKey || theirs.baseKey !== ref.baseKey || theirs.l1Key !== ref.l1Key) {
        throw new Error(
          `the delta names base ${theirs.baseKey} and level-1 file ${theirs.l1Key ?? 'none'}, the attached base is ${mine.baseKey}, expected ${ref.baseKey} and ${ref.l1Key ?? 'none'}`,
        );
      }
      const saved = (await c.runAndReadAll('SELECT views, reference FROM main.delta_state')).getRows()[0];
      const state: DeltaState = { reference: saved?.[1] === undefined ? null : (saved[1] as string | null) };
      // The batch reads through temporary views (the session's own, ahead of the file's in the search
      // path) that always subtract removed rows: it sees its own deletions.
      for (const view of tableViews(l1, undefined, 'TEMP', declared)) await c.run(view);
      await c.run('BEGIN TRANSACTION');
      await body(c, state);
      // The file's views, for readers: rewritten only when they change (a table has its first removed
      // rows, a new delta, a new release, a column added), and only tables with removed rows pay for
      // the anti-join. Their text names the declared columns, so a new declaration changes the digest;
      // columns added also force it, as a stored view over a table that gained one no longer binds.
      const removed = (
        await c.runAndReadAll(
          TABLE_NAMES.map(
            (t) =>
              `SELECT '${t}' AS t, (SELECT count(*) FROM removed.${t})${l1 ? ` + (SELECT count(*) FROM l1.removed.${t})` : ''} AS base,
                (SELECT count(*) FROM removed_l1.${t}) AS l1`,
          ).join(' UNION ALL '),
        )
      ).getRows();
      const having = (i: number) =>
        new Set(removed.filter((r) => Number(r[i]) > 0).map(([t]) => t as TableName));
      const views = deltaViews(l1, { base: having(1), l1: having(2) }, declared);
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
  l1Path?: string,
  retentionCutoff?: Date,
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
      const l1 = delta.l1Key !== undefined;
      if (l1) {
        if (!l1Path) throw new Error(`the delta names level-1 file ${delta.l1Key}: no copy given`);
        await c.run(`ATTACH ${sqlString(l1Path)} AS l1 (READ_ONLY)`);
      }
      await c.run('BEGIN TRANSACTION');
      for (const t of TABLE_NAMES) {
        const removed = `SELECT rid FROM delta.removed.${t}${l1 ? ` UNION ALL SELECT rid FROM l1.removed.${t}` : ''}`;
        await c.run(`DELETE FROM main.${t} WHERE rowid IN (${removed})`);
      }
      await c.run('COMMIT');
      await addMissingColumns(c, 'main', declared);
      await c.run('BEGIN TRANSACTION');
      // By name: `added.<t>` of a delta from before a column was declared lacks it (NULL here).
      for (const t of TABLE_NAMES) {
        const order = CLUSTER_ORDER[t as keyof typeof CLUSTER_ORDER];
        const rows = l1
          ? `SELECT * FROM l1.added.${t} WHERE rowid NOT IN (SELECT rid FROM delta.removed_l1.${t})
             UNION ALL BY NAME SELECT * FROM delta.added.${t}`
          : `SELECT * FROM delta.added.${t}`;
        await c.run(
          `INSERT INTO main.${t} BY NAME SELECT * FROM (${rows})${order ? ` ORDER BY ${order}` : ''}`,
        );
      }
      if (retentionCutoff) await dropPastRetention(c, retentionCutoff);
      await setMeta(c, { generation: next.generation, baseKey: next.baseKey });
      for (const view of VIEWS) await c.run(view);
      await c.run('COMMIT');
      await c.run('DETACH delta');
      if (l1) await c.run('DETACH l1');
      await c.run('CHECKPOINT');
    });
  } finally {
    instance.closeSync();
  }
}

/**
 * The warehouse's retention, applied to a new base: every file (raw version) the month of whose newest
 * reading or event — or, without rows, of whose raw object — ended before `cutoff` goes whole: its rows,
 * rejects, manifest row and ledger rows (the same rule as `pastWarehouseRetention`). Each such file's
 * manifest version stays in the ledger as `retired`: accounted for, so the writer does not load it
 * again and the reconciler neither reads its manifest nor sends it again on each run.
 */
async function dropPastRetention(c: DuckDBConnection, cutoff: Date): Promise<void> {
  // UTC wall time: the months are UTC months, whatever the session's time zone.
  const at = { cutoff: cutoff.toISOString().replace('T', ' ').replace('Z', '') };
  await c.run(
    `CREATE OR REPLACE TEMP TABLE past_retention AS
     SELECT file FROM (
       SELECT source_key || chr(0) || source_etag AS file, max(newest) AS newest FROM (
         SELECT source_key, source_etag, max(ts) AS newest FROM main.readings GROUP BY ALL
         UNION ALL SELECT source_key, source_etag, max(ts) FROM main.events GROUP BY ALL
         UNION ALL SELECT source_key, source_etag, raw_created_at FROM main.manifests
           WHERE rows_readings + rows_events = 0)
       GROUP BY ALL)
     WHERE date_trunc('month', timezone('UTC', newest)) + INTERVAL 1 MONTH <= CAST($cutoff AS TIMESTAMP)`,
    at,
  );
  const dropping = 'source_key || chr(0) || source_etag IN (SELECT file FROM past_retention)';
  const retired = await c.run(
    `INSERT INTO main.ledger (lake_key, etag, kind, source_key, source_etag, raw_created_at, rows, enriched_at, loaded_at)
     SELECT lake_key, etag, '${RETIRED}', source_key, source_etag, raw_created_at, 0, NULL, now()
     FROM main.ledger WHERE kind = 'manifest' AND ${dropping}`,
  );
  for (const t of ['readings', 'events', 'rejects', 'manifests'] as const) {
    await c.run(`DELETE FROM main.${t} WHERE ${dropping}`);
  }
  await c.run(`DELETE FROM main.ledger WHERE kind <> '${RETIRED}' AND ${dropping}`);
  if (retired.rowsChanged > 0)
    logger.info(
      { files: retired.rowsChanged, cutoff: at.cutoff },
      'files past the warehouse retention dropped',
    );
}

/**
 * Folds the delta into a new level-1 file at `path`: a copy of the current one (`l1Path`; none yet: an
 * empty one) less the rows the delta removed from it, plus the delta's removed base rows and its added
 * rows. The caller uploads it under a new key, then an empty delta that names it. Its cost is the
 * level-1 file's size, never the base's; the base stays as it is.
 *
 * Not one transaction, for the reason `foldDelta` gives: the deletes (by the rowids of the copy as
 * written) come before any ADD COLUMN.
 */
export async function foldIntoL1(
  path: string,
  basePath: string,
  deltaPath: string,
  l1Path: string | undefined,
  declared: Declarations = DECLARED,
): Promise<void> {
  if (l1Path) await copyFile(l1Path, path);
  const instance = await openDuckDB(path, { default_block_size: '65536' });
  try {
    await withConnection(instance, async (c) => {
      await c.run(`ATTACH ${sqlString(basePath)} AS base (READ_ONLY)`);
      await c.run(`ATTACH ${sqlString(deltaPath)} AS delta (READ_ONLY)`);
      const delta = await baseRefOf(c, 'delta');
      if ((delta.l1Key !== undefined) !== (l1Path !== undefined)) {
        throw new Error(`the delta names level-1 file ${delta.l1Key ?? 'none'}, given ${l1Path ?? 'none'}`);
      }
      for (const ddl of deltaTables()) await c.run(ddl);
      await c.run('BEGIN TRANSACTION');
      if (l1Path) {
        for (const t of TABLE_NAMES) {
          await c.run(`DELETE FROM added.${t} WHERE rowid IN (SELECT rid FROM delta.removed_l1.${t})`);
        }
      }
      await c.run('COMMIT');
      await addMissingColumns(c, 'added', declared);
      await c.run('BEGIN TRANSACTION');
      for (const t of TABLE_NAMES) {
        await c.run(`INSERT INTO removed.${t} SELECT rid FROM delta.removed.${t}`);
        const order = CLUSTER_ORDER[t as keyof typeof CLUSTER_ORDER];
        await c.run(
          `INSERT INTO added.${t} BY NAME SELECT * FROM delta.added.${t}${order ? ` ORDER BY ${order}` : ''}`,
        );
      }
      await setMeta(c, { generation: delta.generation, baseKey: delta.baseKey });
      await c.run('COMMIT');
      await c.run('DETACH delta');
      await c.run('DETACH base');
      await c.run('CHECKPOINT');
    });
  } finally {
    instance.closeSync();
  }
}
