import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Cron } from 'croner';
import picomatch from 'picomatch';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../core/errors.js';
import { FACTORY_ID } from './keys.js';
import { regexProblem } from './regex.js';
import { templateToRegex } from './template.js';

/**
 * `config/factories.yaml`: factories, and per factory the rules that say how a file in
 * `raw/<factory>/…` is parsed and mapped onto the canonical tables. Validated with zod `.strict()` so a
 * typo fails at load with its path.
 */

/** Where a canonical column comes from: a field name, several fields joined by a space, or a constant. */
const fieldRef = z.union([
  z.string().min(1),
  z.array(z.string().min(1)).min(1),
  z.object({ const: z.string() }).strict(),
  z
    .object({ fromKey: z.string().min(1) })
    .strict()
    .describe('regex with one capture group applied to the object key'),
  /** For files with no time column: the object's creation time, or the day its key names (midnight). */
  z.object({ from: z.enum(['objectTime', 'keyDate']) }).strict(),
]);
export type FieldRef = z.infer<typeof fieldRef>;

const timestampSpec = z
  .object({
    /** `auto`, `iso8601`, `epoch_s`, `epoch_ms`, or a strptime format such as `%y%m%d %H%M%S`. */
    format: z.string().min(1).default('auto'),
    /** IANA zone for naive times; defaults to the factory's. */
    timezone: z.string().min(1).optional(),
  })
  .strict();

const mapping = z
  .object({
    ts: fieldRef.optional(),
    device: fieldRef.optional(),
    metric: fieldRef.optional(),
    value: fieldRef.optional(),
    unit: fieldRef.optional(),
    severity: fieldRef.optional(),
    code: fieldRef.optional(),
    component: fieldRef.optional(),
    message: fieldRef.optional(),
  })
  .strict();
export type Mapping = z.infer<typeof mapping>;

const wide = z
  .object({
    /** Columns that each become one reading; `"*"`: every column not mapped to ts/device. */
    metrics: z.union([z.literal('*'), z.array(z.string().min(1)).min(1)]).default('*'),
    units: z.record(z.string(), z.string()).default({}),
  })
  .strict();

/**
 * Records that span lines. `start`: a line matching this regex starts a record; the lines after it that
 * do not are joined to it (with \n). A record is at most `maxLines` lines and `maxBytes` bytes: one
 * that would grow past either is not joined, and its lines are parsed one by one.
 */
const multiline = z
  .object({
    start: z.string().min(1).optional(),
    maxLines: z.number().int().min(2).max(100_000).default(1000),
    maxBytes: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024)
      .default(1024 * 1024),
  })
  .strict();
export type Multiline = z.infer<typeof multiline>;

const ruleBase = {
  /** Glob(s) on the file name (or on the path below the factory when the glob has a `/`); `.gz` ignored. */
  match: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  table: z.enum(['readings', 'events', 'auto']).default('auto'),
  map: mapping.default({}),
  wide: wide.optional(),
  timestamp: timestampSpec.default({ format: 'auto' }),
  /** Regex with one group that pulls an error code out of the message when no code field is mapped. */
  codePattern: z.string().min(1).optional(),
  /**
   * Records spanning lines. Templates join indented, `at …`, `Caused by:` and `... N more` lines to
   * the record before them unless this says otherwise (`false`: every line is a record); CSV joins
   * lines inside a quoted field.
   */
  multiline: z.union([multiline, z.literal(false)]).optional(),
};

const ruleSchema = z.discriminatedUnion('format', [
  z.object({ format: z.literal('auto'), ...ruleBase }).strict(),
  z.object({ format: z.literal('jsonl'), ...ruleBase }).strict(),
  z
    .object({
      format: z.literal('csv'),
      ...ruleBase,
      /** `whitespace`: fields are separated by runs of spaces and tabs (leading and trailing ignored). */
      delimiter: z.union([z.literal('whitespace'), z.string().min(1).max(4)]).optional(),
      header: z.boolean().default(true),
      columns: z.array(z.string().min(1)).min(1).optional(),
      /** Numbers written with a decimal comma (`21,5`); default: on when the delimiter is `;`. */
      decimalComma: z.boolean().optional(),
    })
    .strict(),
  z.object({ format: z.literal('syslog'), ...ruleBase }).strict(),
  z.object({ format: z.literal('template'), ...ruleBase, template: z.string().min(1) }).strict(),
  z.object({ format: z.literal('regex'), ...ruleBase, pattern: z.string().min(1) }).strict(),
]);
export type FileRule = z.infer<typeof ruleSchema>;

const ianaZone = z.string().refine(
  (tz) => {
    try {
      new Intl.DateTimeFormat('en', { timeZone: tz });
      return true;
    } catch {
      return false;
    }
  },
  { message: 'not an IANA time zone' },
);

/**
 * A secret is never written in the file: it is named, and the value comes from the environment
 * locally or from the SST secret of that name when deployed (see `functions/core/config.ts`).
 */
const secretRef = z
  .object({ secret: z.string().regex(/^[A-Za-z][A-Za-z0-9_]*$/, 'secret names are letters, digits and _') })
  .strict();
export type SecretRef = z.infer<typeof secretRef>;

const cron = z.string().refine(
  (expr) => {
    try {
      new Cron(expr, { paused: true });
      return true;
    } catch {
      return false;
    }
  },
  { message: 'not a cron expression' },
);

const sourceBase = {
  /** Unique within the factory: names the fetch state and appears in object metadata and metrics. */
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'source ids are lower-case letters, digits and -'),
  enabled: z.boolean().default(true),
  /** When the schedule function enqueues this source (cron, in the factory's time zone). */
  schedule: cron.default('*/15 * * * *'),
  /** Glob on the path below the remote directory (or on the name when it has no /). */
  glob: z.string().min(1).default('*'),
  /** Files modified more recently than this are left for the next run (they may still be written). */
  minAgeSeconds: z.number().int().min(0).default(30),
  afterFetch: z.enum(['keep', 'delete']).default('keep'),
};

const sourceSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('sftp'),
      ...sourceBase,
      host: z.string().min(1),
      port: z.number().int().min(1).max(65535).default(22),
      user: z.string().min(1),
      password: secretRef.optional(),
      privateKey: secretRef.optional(),
      /** Pin the server's host key: `SHA256:<base64>` as printed by `ssh-keygen -lf`. */
      hostKey: z
        .string()
        .regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, 'expected SHA256:<base64> (ssh-keygen -lf)')
        .optional(),
      dir: z.string().min(1).default('.'),
      recursive: z.boolean().default(false),
    })
    .strict(),
  z
    .object({
      type: z.enum(['ftp', 'ftps']),
      ...sourceBase,
      host: z.string().min(1),
      port: z.number().int().min(1).max(65535).default(21),
      user: z.string().min(1).default('anonymous'),
      password: secretRef.optional(),
      dir: z.string().min(1).default('/'),
      recursive: z.boolean().default(false),
    })
    .strict(),
  z
    .object({
      type: z.literal('http'),
      ...sourceBase,
      /** Listing endpoint: JSON array of names/URLs or {name|url, size?, mtime?}, or {items, next}. */
      url: z.url(),
      token: secretRef.optional(),
      /** Query parameter that receives the last run's watermark (ISO time), for incremental listings. */
      sinceParam: z.string().min(1).optional(),
    })
    .strict(),
  z
    .object({
      type: z.literal('s3'),
      ...sourceBase,
      bucket: z.string().min(1),
      prefix: z.string().default(''),
      region: z.string().min(1).optional(),
      endpoint: z.url().optional(),
    })
    .strict(),
]);
export type Source = z.infer<typeof sourceSchema>;

const factorySchema = z
  .object({
    name: z.string().min(1),
    timezone: ianaZone.default('UTC'),
    files: z.array(ruleSchema).default([]),
    sources: z.array(sourceSchema).default([]),
  })
  .strict();
export type Factory = z.infer<typeof factorySchema> & { id: string };

const factoryId = z.string().regex(FACTORY_ID, 'factory ids are lower-case letters, digits and -');

const factoriesFileSchema = z
  .object({
    version: z.literal(1),
    limits: z
      .object({
        maxLineBytes: z.number().int().positive().optional(),
        /** A file rejecting more than this share of its lines is reported (manifest warning, metric). */
        maxRejectRatio: z.number().min(0).max(1).default(0.5),
        /** Timestamps outside [notBefore, object time + maxAheadHours] are rejected as implausible. */
        timestamps: z
          .object({
            notBefore: z.iso.datetime({ offset: true }).or(z.iso.date()).default('1970-01-01'),
            maxAheadHours: z.number().min(0).default(24),
          })
          .strict()
          .default({ notBefore: '1970-01-01', maxAheadHours: 24 }),
      })
      .strict()
      .default({ maxRejectRatio: 0.5, timestamps: { notBefore: '1970-01-01', maxAheadHours: 24 } }),
    /** Anomaly flags on readings: robust z-score |x − median| / (1.4826·MAD) above the threshold. */
    enrichment: z
      .object({
        anomalyThreshold: z.number().positive().default(4),
        baselineMinSamples: z.number().int().min(3).default(20),
        baselineDays: z.number().int().min(1).default(7),
      })
      .strict()
      .default({ anomalyThreshold: 4, baselineMinSamples: 20, baselineDays: 7 }),
    factories: z.record(factoryId, factorySchema),
  })
  .strict();

export interface FactoriesConfig {
  file: string;
  limits: {
    maxLineBytes?: number;
    maxRejectRatio: number;
    timestamps: { notBefore: string; maxAheadHours: number };
  };
  enrichment: { anomalyThreshold: number; baselineMinSamples: number; baselineDays: number };
  factories: Map<string, Factory>;
}

/** Resolves `PIPELINE_CONFIG` (a folder holding factories.yaml, or the file itself). */
export function factoriesFile(configPath: string): string {
  try {
    return statSync(configPath).isDirectory() ? join(configPath, 'factories.yaml') : configPath;
  } catch (cause) {
    throw new ConfigError(configPath, 'config path does not exist', { cause });
  }
}

/** Parses and validates factories YAML text; `file` is only used in error messages. */
export function parseFactories(text: string, file: string): FactoriesConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (cause) {
    throw new ConfigError(file, `invalid YAML: ${(cause as Error).message}`, { cause });
  }
  const parsed = factoriesFileSchema.safeParse(raw);
  if (!parsed.success)
    throw new ConfigError(file, `invalid configuration:\n${z.prettifyError(parsed.error)}`);
  for (const [id, f] of Object.entries(parsed.data.factories)) {
    const ids = new Set<string>();
    f.sources.forEach((src, i) => {
      if (ids.has(src.id))
        throw new ConfigError(file, `factories.${id}.sources[${i}].id: "${src.id}" is used twice`);
      ids.add(src.id);
      if (src.type === 'http' && src.afterFetch === 'delete') {
        throw new ConfigError(
          file,
          `factories.${id}.sources[${i}].afterFetch: delete is not supported for http sources`,
        );
      }
      if (src.type === 'sftp' && !src.password && !src.privateKey) {
        throw new ConfigError(
          file,
          `factories.${id}.sources[${i}]: sftp needs password or privateKey (a secret name)`,
        );
      }
    });
    f.files.forEach((rule, i) => {
      const at = `factories.${id}.files[${i}]`;
      const checks: [string, string | undefined, 'named' | 'one' | 'any'][] = [
        ['codePattern', rule.codePattern, 'one'],
        ['pattern', rule.format === 'regex' ? rule.pattern : undefined, 'named'],
        ['multiline.start', rule.multiline ? rule.multiline.start : undefined, 'any'],
        ...Object.entries(rule.map).flatMap(([column, ref]): [string, string, 'one'][] =>
          ref && typeof ref === 'object' && 'fromKey' in ref
            ? [[`map.${column}.fromKey`, ref.fromKey, 'one']]
            : [],
        ),
      ];
      for (const [name, pattern, groups] of checks) {
        if (pattern === undefined) continue;
        const problem = regexProblem(pattern, groups);
        if (problem) throw new ConfigError(file, `${at}.${name}: ${problem}`);
      }
      if (rule.format === 'template') {
        try {
          templateToRegex(rule.template);
        } catch (err) {
          throw new ConfigError(file, `${at}.template: ${(err as Error).message}`);
        }
      }
    });
  }
  return {
    file,
    limits: parsed.data.limits,
    enrichment: parsed.data.enrichment,
    factories: new Map(Object.entries(parsed.data.factories).map(([id, f]) => [id, { ...f, id }])),
  };
}

/** The folder holding factories.yaml and the reference files. */
export function configDir(configPath: string): string {
  return dirname(factoriesFile(configPath));
}

export function loadFactories(configPath: string): FactoriesConfig {
  const file = factoriesFile(configPath);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new ConfigError(file, 'cannot read file', { cause });
  }
  return parseFactories(text, file);
}

/**
 * The config at `configPath`, loaded now and again whenever the file changes (a stat per call), so a
 * rule fixed in a running stack applies from the next object on — `telemetry-pipeline reprocess` then
 * runs the files the old rule got wrong again. Deployed the file is in the bundle and never changes.
 * A change that does not validate fails the call with the file and the path, as it fails a cold start.
 */
export function factoriesLoader(configPath: string): () => FactoriesConfig {
  const file = factoriesFile(configPath);
  const stampOf = () => {
    try {
      const s = statSync(file, { bigint: true });
      return `${s.ino}:${s.size}:${s.mtimeNs}`;
    } catch (cause) {
      throw new ConfigError(file, 'cannot read file', { cause });
    }
  };
  let stamp = stampOf();
  let config = loadFactories(file);
  return () => {
    const now = stampOf();
    if (now !== stamp) {
      config = loadFactories(file);
      stamp = now;
    }
    return config;
  };
}

/** The rule for a key below its factory; `undefined` means auto-detect. */
export function ruleForKey(factory: Factory, key: string): FileRule | undefined {
  const below = key.slice(key.indexOf('/') + 1).replace(/\.gz$/i, '');
  return factory.files.find((rule) => {
    const globs = Array.isArray(rule.match) ? rule.match : [rule.match];
    return globs.some((g) => picomatch(g, { basename: !g.includes('/'), dot: true })(below));
  });
}

/** Every secret name the sources refer to (for SST: one `sst.Secret` each, linked to fetch). */
export function secretNames(config: FactoriesConfig): string[] {
  const names = new Set<string>();
  for (const factory of config.factories.values()) {
    for (const source of factory.sources) {
      for (const value of Object.values(source)) {
        if (value && typeof value === 'object' && 'secret' in value) names.add((value as SecretRef).secret);
      }
    }
  }
  return [...names].sort();
}
