import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../core/errors.js';
import { REFERENCE_FILES } from './keys.js';
import { SEVERITY_NAMES, SEVERITY_WORDS } from './severity.js';

/**
 * Reference data: the device registry and the error-code catalogue. The bundled files under `config/`
 * are the fallback; a copy uploaded to `reference/<name>` in the lake bucket takes over from the next
 * file on (see {@link ReferenceStore}).
 */

const severity = z.union([z.number().int().min(0).max(7), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const hit = Object.entries(SEVERITY_WORDS).find(([, words]) => words.includes(v.toLowerCase()));
  if (!hit) {
    ctx.addIssue({
      code: 'custom',
      message: `unknown severity "${v}" (use 0–7 or ${SEVERITY_NAMES.join(', ')})`,
    });
    return z.NEVER;
  }
  return Number(hit[0]);
});

export const devicesSchema = z
  .object({
    version: z.literal(1),
    devices: z.array(
      z
        .object({
          factory: z.string().min(1),
          device: z.string().min(1),
          model: z.string().min(1),
          line: z.string().min(1),
          site: z.string().min(1),
          criticality: z.enum(['low', 'medium', 'high', 'critical']),
          commissioned: z.union([z.iso.date(), z.date().transform((d) => d.toISOString().slice(0, 10))]),
        })
        .strict(),
    ),
  })
  .strict();

export const errorCodesSchema = z
  .object({
    version: z.literal(1),
    codes: z.array(
      z
        .object({
          code: z.string().min(1),
          category: z.string().min(1),
          severity,
          description: z.string().min(1),
          action: z.string().min(1),
        })
        .strict(),
    ),
  })
  .strict();

export type Devices = z.infer<typeof devicesSchema>['devices'];
export type ErrorCodes = z.infer<typeof errorCodesSchema>['codes'];

function parse<T>(schema: z.ZodType<T>, text: string, where: string): T {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (cause) {
    throw new ConfigError(where, `invalid YAML: ${(cause as Error).message}`, { cause });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success)
    throw new ConfigError(where, `invalid reference data:\n${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

export function parseDevices(text: string, where: string): Devices {
  const devices = parse(devicesSchema, text, where).devices;
  const seen = new Set<string>();
  for (const d of devices) {
    const id = `${d.factory}/${d.device}`;
    if (seen.has(id)) throw new ConfigError(where, `device ${id} is listed twice`);
    seen.add(id);
  }
  return devices;
}

export function parseErrorCodes(text: string, where: string): ErrorCodes {
  const codes = parse(errorCodesSchema, text, where).codes;
  const seen = new Set<string>();
  for (const c of codes) {
    if (seen.has(c.code)) throw new ConfigError(where, `code ${c.code} is listed twice`);
    seen.add(c.code);
  }
  return codes;
}

/** The reference files the project ships (`config/` at the repository's root). */
export const SHIPPED_CONFIG_DIR = join(import.meta.dirname, '..', '..', 'config');

/**
 * The reference files next to factories.yaml. A config folder may hold only factories.yaml: a file it
 * lacks is taken from the project's own `config/` (the shipped registry and catalogue), and when that
 * has none either (a deployment whose config folder was trimmed), the list is empty — enrichment then
 * leaves the registry and catalogue columns NULL. `from` says which file was used, for the logs.
 */
export function bundledReference(
  configDir: string,
  fallbackDir = SHIPPED_CONFIG_DIR,
): { devices: Devices; errorCodes: ErrorCodes; from: { devices: string; errorCodes: string } } {
  const read = (name: string): { file: string; text: string } | undefined => {
    for (const dir of [configDir, fallbackDir]) {
      const file = join(dir, name);
      if (!existsSync(file)) continue;
      try {
        return { file, text: readFileSync(file, 'utf8') };
      } catch (cause) {
        throw new ConfigError(file, 'cannot read file', { cause });
      }
    }
    return undefined;
  };
  const d = read(REFERENCE_FILES.devices);
  const e = read(REFERENCE_FILES.errorCodes);
  return {
    devices: d ? parseDevices(d.text, d.file) : [],
    errorCodes: e ? parseErrorCodes(e.text, e.file) : [],
    from: { devices: d?.file ?? 'none', errorCodes: e?.file ?? 'none' },
  };
}
