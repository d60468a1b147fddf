import { createWriteStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { jsonlReadings, syslogLines, templatedLog, wideCsv } from '../local/demo-data.js';

/** Deterministic corpora (seeded generators): the same options give byte-identical files. */
export type Format = 'jsonl' | 'csv' | 'syslog' | 'template';

const START = new Date('2026-01-01T00:00:00Z');

function lines(format: Format, count: number, seed: number): Iterable<string> {
  switch (format) {
    case 'jsonl':
      return jsonlReadings({ seed, lines: count, start: START, stepMs: 100, badEvery: 10_000 });
    case 'csv':
      return wideCsv({ seed, lines: count, start: START, stepMs: 100 });
    case 'syslog':
      return syslogLines({ seed, lines: count, start: START, stepMs: 100 });
    case 'template':
      return templatedLog({ seed, lines: count, start: START, stepMs: 100 });
  }
}

export const EXTENSION: Record<Format, string> = {
  jsonl: 'jsonl',
  csv: 'csv',
  syslog: 'syslog',
  template: 'log',
};

/** Writes `count` lines of a format (and optionally its gzip) unless already there; returns the paths. */
export async function corpus(
  dir: string,
  format: Format,
  count: number,
  gzip = false,
): Promise<{ path: string; gz?: string; bytes: number }> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${format}-${count}.${EXTENSION[format]}`);
  const exists = await stat(path).then(
    (s) => s.size > 0,
    () => false,
  );
  if (!exists) {
    async function* text() {
      let batch = '';
      for (const l of lines(format, count, 42)) {
        batch += `${l}\n`;
        if (batch.length > 1 << 20) {
          yield batch;
          batch = '';
        }
      }
      if (batch) yield batch;
    }
    await pipeline(Readable.from(text()), createWriteStream(path));
  }
  let gz: string | undefined;
  if (gzip) {
    gz = `${path}.gz`;
    if (
      !(await stat(gz).then(
        () => true,
        () => false,
      ))
    )
      await pipeline(
        (await import('node:fs')).createReadStream(path),
        createGzip({ level: 6 }),
        createWriteStream(gz),
      );
  }
  return { path, gz, bytes: (await stat(path)).size };
}

/** A JSONL file of about `bytes` bytes, for the memory run. */
export async function bigJsonl(dir: string, bytes: number): Promise<string> {
  const perLine = 105;
  return (await corpus(dir, 'jsonl', Math.round(bytes / perLine))).path;
}
