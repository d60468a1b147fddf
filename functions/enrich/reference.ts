import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../core/errors.js';
import { SEVERITY_NAMES, SEVERITY_WORDS } from '../etl/severity.js';

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

export const REFERENCE_FILES = { devices: 'devices.yaml', errorCodes: 'error-codes.yaml' } as const;

/** Where an updated copy is picked up from, in the lake bucket. */
export function referenceKey(name: keyof typeof REFERENCE_FILES): string {
  return `reference/${REFERENCE_FILES[name]}`;
}

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

/** The bundled reference files next to factories.yaml. */
export function bundledReference(configDir: string): { devices: Devices; errorCodes: ErrorCodes } {
  const read = (name: string) => {
    const file = join(configDir, name);
    try {
      return { file, text: readFileSync(file, 'utf8') };
    } catch (cause) {
      throw new ConfigError(file, 'cannot read file', { cause });
    }
  };
  const d = read(REFERENCE_FILES.devices);
  const e = read(REFERENCE_FILES.errorCodes);
  return { devices: parseDevices(d.text, d.file), errorCodes: parseErrorCodes(e.text, e.file) };
}
