import { z } from 'zod';
import type { FileDetail, FileRow, fileQuery, filesQuery, Page } from '../contracts/api.js';
import { HttpError } from './http.js';
import {
  decodeCursor,
  encodeCursor,
  isoOrNull,
  num,
  numOrNull,
  type Row,
  type RunQuery,
  rows,
  strOrNull,
  Where,
} from './sql.js';

/**
 * A raw file version's id: the first 24 hex digits of sha256(key NUL etag) — stable, URL-safe, and
 * computed the same way in SQL (below) and anywhere else that needs it.
 */
const ID_SQL = `left(sha256(source_key || chr(0) || source_etag), 24)`;

const STATUS_SQL = {
  complete: `status = 'loaded' AND complete`,
  incomplete: `status = 'loaded' AND NOT complete`,
  quarantined: `status = 'quarantined'`,
  rejects: 'lines_rejected > 0',
} as const;

const COLUMNS = `${ID_SQL} AS id, source_key, source_etag, factory, status, format, "table", bytes, lines_total,
  lines_loaded, lines_rejected, rows_expected, rows_loaded, complete, quarantine_reason,
  epoch_us(raw_created_at) AS created_us, epoch_ms(loaded_at) AS loaded_ms, end_to_end_seconds`;

function fileRow(r: Row): FileRow {
  return {
    id: String(r.id),
    source_key: String(r.source_key),
    source_etag: String(r.source_etag),
    factory: String(r.factory),
    status: r.status === 'quarantined' ? 'quarantined' : 'loaded',
    format: strOrNull(r.format),
    table: strOrNull(r.table),
    bytes: numOrNull(r.bytes),
    lines_total: numOrNull(r.lines_total),
    lines_loaded: numOrNull(r.lines_loaded),
    lines_rejected: numOrNull(r.lines_rejected),
    rows_expected: numOrNull(r.rows_expected),
    rows_loaded: num(r.rows_loaded ?? 0),
    complete: r.complete === true,
    quarantine_reason: strOrNull(r.quarantine_reason) || null,
    raw_created_at: isoOrNull(r.created_us === null ? null : num(r.created_us) / 1000),
    loaded_at: isoOrNull(r.loaded_ms),
    end_to_end_seconds: numOrNull(r.end_to_end_seconds),
  };
}

/** Sort key of the file list: newest upload first, then key and ETag. */
const filesCursor = z.tuple([z.number().int(), z.string().max(1024), z.string().max(256)]);

/** `GET /api/files`: raw file versions, newest upload first, with how each ended; paged by key. */
export async function listFiles(run: RunQuery, q: z.output<typeof filesQuery>): Promise<Page<FileRow>> {
  const where = new Where()
    .when(q.factory, 'factory', 'factory = $factory')
    .when(q.q, 'q', 'contains(lower(source_key), lower($q))')
    .when(q.from, 'from', 'raw_created_at >= CAST($from AS TIMESTAMPTZ)')
    .when(q.to, 'to', 'raw_created_at < CAST($to AS TIMESTAMPTZ)');
  if (q.status) where.and(STATUS_SQL[q.status]);
  if (q.cursor) {
    const [us, key, eTag] = decodeCursor(q.cursor, filesCursor);
    where.and(
      `(epoch_us(raw_created_at) < $c_us OR (epoch_us(raw_created_at) = $c_us AND
         (source_key > $c_key OR (source_key = $c_key AND source_etag > $c_etag))))`,
      { c_us: us, c_key: key, c_etag: eTag },
    );
  }
  const found = await rows(
    run,
    `SELECT ${COLUMNS} FROM pipeline_files ${where}
     ORDER BY raw_created_at DESC, source_key, source_etag LIMIT $limit`,
    { ...where.params, limit: q.limit + 1 },
  );
  const page = found.slice(0, q.limit);
  const last = page.at(-1);
  return {
    items: page.map(fileRow),
    nextCursor:
      found.length > q.limit && last
        ? encodeCursor([num(last.created_us), String(last.source_key), String(last.source_etag)])
        : null,
  };
}

const rejectsCursor = z.tuple([z.number().int().min(0)]);

/**
 * `GET /api/files/{id}`: one raw file version — its manifest figures, the lake objects it produced as
 * loaded, and its rejected lines in line order with their reasons (paged by line number).
 */
export async function fileDetail(
  run: RunQuery,
  id: string,
  q: z.output<typeof fileQuery>,
): Promise<FileDetail> {
  const [file] = await rows(
    run,
    `SELECT ${COLUMNS}, lines_blank, lines_header, m.etl_seconds
     FROM pipeline_files JOIN (SELECT source_key, source_etag, etl_seconds FROM manifests) m
       USING (source_key, source_etag)
     WHERE ${ID_SQL} = $id`,
    { id },
  );
  if (!file) throw new HttpError(404, `no file with id ${id}`);
  const version = { key: String(file.source_key), etag: String(file.source_etag) };
  const outputs = await rows(
    run,
    `SELECT lake_key, kind, rows, epoch_ms(loaded_at) AS loaded_ms FROM ledger
     WHERE source_key = $key AND source_etag = $etag ORDER BY kind, lake_key`,
    version,
  );
  const after = q.cursor ? decodeCursor(q.cursor, rejectsCursor)[0] : -1;
  const rejects = await rows(
    run,
    `SELECT source_line, coalesce(source_lines, 1) AS source_lines, reason, raw FROM rejects
     WHERE source_key = $key AND source_etag = $etag AND source_line > $after
     ORDER BY source_line LIMIT $limit`,
    { ...version, after, limit: q.limit + 1 },
  );
  const page = rejects.slice(0, q.limit);
  return {
    file: {
      ...fileRow(file),
      lines_blank: numOrNull(file.lines_blank),
      lines_header: numOrNull(file.lines_header),
      etl_seconds: numOrNull(file.etl_seconds),
    },
    outputs: outputs.map((o) => ({
      lake_key: String(o.lake_key),
      kind: String(o.kind),
      rows: num(o.rows ?? 0),
      loaded_at: isoOrNull(o.loaded_ms),
    })),
    rejects: {
      items: page.map((r) => ({
        line: num(r.source_line),
        lines: num(r.source_lines),
        reason: String(r.reason),
        raw: String(r.raw ?? ''),
      })),
      nextCursor: rejects.length > q.limit ? encodeCursor([num(page.at(-1)!.source_line)]) : null,
    },
  };
}
