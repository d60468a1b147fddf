import { z } from 'zod';
import { FACTORY_ID } from './keys.js';
import { SEVERITY_NAMES } from './severity.js';

/**
 * The read API's contract (`GET /api/…`, served by the api function): what each route accepts —
 * validated here, a bad parameter is a 400 naming it — and what it answers. The dashboard page
 * (`dashboard/`) imports the response types; the router (`functions/api/`) both.
 *
 * Times travel as ISO 8601 strings in parameters and as epoch milliseconds in chart data (compact,
 * and what chart libraries take); every other timestamp in a response is an ISO string.
 */

const factory = z.string().regex(FACTORY_ID, 'a factory id: lower-case letters, digits and "-"');
/** Device ids and metric names are free text in the data; bounded so a request cannot be huge. */
const name = z.string().min(1).max(200);
const instant = z
  .union([z.iso.datetime({ offset: true, local: false }), z.iso.date()], {
    error: 'an ISO 8601 time such as 2025-01-31T06:00:00Z, or a date such as 2025-01-31',
  })
  .transform((s) => new Date(s.length === 10 ? `${s}T00:00:00Z` : s))
  .refine((d) => !Number.isNaN(d.getTime()) && d.getUTCFullYear() >= 1970 && d.getUTCFullYear() < 3000, {
    message: 'a time between 1970 and 3000',
  });

/** `from` < `to` when both are given. A range includes `from` and excludes `to`. */
function ordered<T extends { from?: Date | undefined; to?: Date | undefined }>(v: T, ctx: z.RefinementCtx) {
  if (v.from && v.to && v.from >= v.to) {
    ctx.addIssue({ code: 'custom', path: ['to'], message: '"to" must be after "from"' });
  }
}

/** Severity filter: a syslog number (0–7, that level and worse) or its name. */
const severity = z
  .union([z.coerce.number().int().min(0).max(7), z.enum(SEVERITY_NAMES)])
  .transform((v) => (typeof v === 'number' ? v : SEVERITY_NAMES.indexOf(v)));

export const overviewQuery = z.object({ factory: factory.optional() }).strict();

export const devicesQuery = z.object({ factory: factory.optional() }).strict();

export const metricsQuery = z.object({ factory: factory.optional(), device: name.optional() }).strict();

export const MAX_POINTS = 5000;
export const readingsQuery = z
  .object({
    factory,
    device: name,
    metric: name,
    from: instant.optional(),
    to: instant.optional(),
    points: z.coerce.number().int().min(10).max(MAX_POINTS).default(1000),
  })
  .strict()
  .superRefine(ordered);

export const MAX_PAGE = 500;
export const eventsQuery = z
  .object({
    factory: factory.optional(),
    device: name.optional(),
    severity: severity.optional(),
    code: name.optional(),
    from: instant.optional(),
    to: instant.optional(),
    limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(100),
    cursor: z.string().max(2000).optional(),
  })
  .strict()
  .superRefine(ordered);

/** Columns of a heatmap at most (a week of hours): a longer range is shown in wider columns. */
export const MAX_HEALTH_COLUMNS = 168;
/** Default range when none is given: the 48 hours up to the latest data. */
export const DEFAULT_HEALTH_HOURS = 48;
export const healthQuery = z
  .object({ factory: factory.optional(), from: instant.optional(), to: instant.optional() })
  .strict()
  .superRefine(ordered);

export const FILE_STATUSES = ['complete', 'incomplete', 'quarantined', 'rejects'] as const;
export const filesQuery = z
  .object({
    factory: factory.optional(),
    status: z.enum(FILE_STATUSES).optional(),
    q: z.string().min(1).max(200).optional(),
    from: instant.optional(),
    to: instant.optional(),
    limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(50),
    cursor: z.string().max(2000).optional(),
  })
  .strict()
  .superRefine(ordered);

/** A raw file version's id in `/api/files/{id}`: see `fileId`. */
export const FILE_ID = /^[0-9a-f]{24}$/;

export const fileQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(200),
    cursor: z.string().max(2000).optional(),
  })
  .strict();

// ---- responses ----

/** A list that is returned whole (`/api/devices`, `/api/metrics`). */
export interface Items<T> {
  items: T[];
}

export interface Page<T> {
  items: T[];
  /** Pass as `cursor` for the next page; `null` on the last one. */
  nextCursor: string | null;
}

export interface FactoryOverview {
  factory: string;
  files: { total: number; complete: number; incomplete: number; quarantined: number; withRejects: number };
  lines: { total: number; loaded: number; rejected: number };
  rows: { readings: number; events: number };
  /** Seconds from the raw upload to the last row in the warehouse, over complete files. */
  lagSeconds: { p50: number | null; p95: number | null };
  lastLoadedAt: string | null;
}

export interface Overview {
  generatedAt: string;
  warehouse: { updatedAt: string | null; bytes: number | null };
  factories: FactoryOverview[];
  /**
   * Files, rows and rejected lines by raw upload time, over the 48 hours before the latest upload, in
   * buckets of `bucketSeconds` (1 minute to 1 hour, by how much of that window has data). `t`: the
   * bucket's start, epoch ms.
   */
  throughput: {
    bucketSeconds: number;
    buckets: { t: number; files: number; rows: number; rejected: number }[];
  };
  /** Messages waiting (and in flight) per queue and dead-letter queue; `null` where unknown. */
  queues: { queue: string; waiting: number; inFlight: number }[] | null;
}

export interface DeviceSummary {
  factory: string;
  device: string;
  model: string | null;
  line: string | null;
  site: string | null;
  criticality: string | null;
  /** In the registry (`devices.yaml`), or only seen in the data. */
  registered: boolean;
  lastSeen: string | null;
  /** Health score of the device's latest hour with data (0–100), and that hour. */
  health: { hour: string; score: number } | null;
  /** Anomalous readings and alarms (error-or-worse events) in the 24 hours before `lastSeen`. */
  anomalies24h: number;
  openAlarms: number;
  lastAlarm: { ts: string; code: string | null; severity: number | null; message: string | null } | null;
}

export interface MetricSummary {
  factory: string;
  device: string;
  metric: string;
  unit: string | null;
  readings: number;
  first: string;
  last: string;
}

export interface ReadingSeries {
  factory: string;
  device: string;
  metric: string;
  unit: string | null;
  from: number;
  to: number;
  /** Readings in the range before downsampling. */
  rows: number;
  downsampled: boolean;
  /** `[epoch ms, value]`, time-ordered: per bucket the first, last, min and max (M4). */
  points: [number, number][];
  /** Anomalous readings in the range, each as itself: `[epoch ms, value, anomaly score]`. */
  anomalies: [number, number, number | null][];
}

export interface EventRow {
  ts: string;
  factory: string;
  device: string | null;
  severity: number | null;
  severity_name: string | null;
  effective_severity: number | null;
  code: string | null;
  category: string | null;
  component: string | null;
  message: string | null;
  code_description: string | null;
  recommended_action: string | null;
  severity_score: number | null;
  source_key: string;
  source_line: number;
}

export interface HealthGrid {
  from: number;
  to: number;
  /**
   * Hours per column: 1, or more when the range has more than MAX_HEALTH_COLUMNS hours (a column then
   * scores the sum of its hours' anomalies and events).
   */
  bucketHours: number;
  /** Epoch ms of each column's start. */
  hours: number[];
  devices: { factory: string; device: string; line: string | null; criticality: string | null }[];
  /** More cells than a response holds: narrow the range or pick a factory. */
  truncated: boolean;
  /** One cell per device and column with data; `hour` is the column's start. */
  cells: {
    factory: string;
    device: string;
    hour: number;
    score: number;
    readings: number;
    anomalies: number;
    errors: number;
    warnings: number;
  }[];
}

export interface FileRow {
  id: string;
  source_key: string;
  source_etag: string;
  factory: string;
  /** `loaded` (then `complete` says whether all its rows reached the warehouse) or `quarantined`. */
  status: 'loaded' | 'quarantined';
  format: string | null;
  table: string | null;
  bytes: number | null;
  lines_total: number | null;
  lines_loaded: number | null;
  lines_rejected: number | null;
  rows_expected: number | null;
  rows_loaded: number;
  complete: boolean;
  quarantine_reason: string | null;
  raw_created_at: string | null;
  loaded_at: string | null;
  end_to_end_seconds: number | null;
}

export interface FileDetail {
  file: FileRow & { lines_blank: number | null; lines_header: number | null; etl_seconds: number | null };
  outputs: { lake_key: string; kind: string; rows: number; loaded_at: string | null }[];
  rejects: Page<{ line: number; lines: number; reason: string; raw: string }>;
}
