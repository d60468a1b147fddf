import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { manifestKeyOf } from '../functions/contracts/keys.js';
import { type Manifest, manifestSchema } from '../functions/contracts/manifest.js';
import { joinLines, jsonlReadings, syslogLines, templatedLog, wideCsv } from './demo-data.js';

export const DEMO_FACTORY = 'demo';

/** The demo factory's files for a day: a bit of every supported format, a few bad lines included. */
export function demoFiles(day: Date): { name: string; body: string }[] {
  const start = new Date(Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate(), 6));
  const seed = start.getTime() / 86_400_000;
  return [
    {
      name: 'sensors-a.jsonl',
      body: joinLines(jsonlReadings({ seed, lines: 1200, start, stepMs: 15_000, badEvery: 400 })),
    },
    { name: 'line-1.csv', body: joinLines(wideCsv({ seed: seed + 1, lines: 240, start, stepMs: 60_000 })) },
    {
      name: 'gateway.syslog',
      body: joinLines(syslogLines({ seed: seed + 2, lines: 200, start, stepMs: 90_000 })),
    },
    {
      name: 'controller-press-01.log',
      body: joinLines(templatedLog({ seed: seed + 3, lines: 200, start, stepMs: 90_000 })),
    },
  ];
}

export function rawKey(factory: string, day: Date, name: string): string {
  const [y, m, d] = day.toISOString().slice(0, 10).split('-');
  return `${factory}/${y}/${m}/${d}/${name}`;
}

/**
 * The object the sample events in `events/` refer to: its key has a space and a `+`, which S3 event
 * records encode (`press+line%2B1+sensors.jsonl`; MinIO also writes `/` as `%2F`).
 */
export const SAMPLE_EVENT_KEY = 'demo/2026/01/15/press line+1 sensors.jsonl';

export function sampleEventObject(): string {
  return joinLines(
    jsonlReadings({ seed: 15, lines: 50, start: new Date('2026-01-15T06:00:00Z'), stepMs: 60_000 }),
  );
}

/** Uploads the demo files unless they are already there (identical content, so a restart adds nothing). */
export async function seedDemo(s3: S3Client, day = new Date()): Promise<string[]> {
  const keys: string[] = [];
  for (const file of demoFiles(day)) {
    const key = rawKey(DEMO_FACTORY, day, file.name);
    keys.push(key);
    const exists = await s3.send(new HeadObjectCommand({ Bucket: 'raw', Key: key })).then(
      () => true,
      () => false,
    );
    if (!exists)
      await s3.send(
        new PutObjectCommand({ Bucket: 'raw', Key: key, Body: file.body, ContentType: 'text/plain' }),
      );
  }
  const sampleExists = await s3.send(new HeadObjectCommand({ Bucket: 'raw', Key: SAMPLE_EVENT_KEY })).then(
    () => true,
    () => false,
  );
  if (!sampleExists)
    await s3.send(new PutObjectCommand({ Bucket: 'raw', Key: SAMPLE_EVENT_KEY, Body: sampleEventObject() }));
  keys.push(SAMPLE_EVENT_KEY);
  return keys;
}

/** Waits until every key has an ETL manifest in the lake (or the timeout passes). */
export async function waitForManifests(
  s3: S3Client,
  keys: string[],
  timeoutMs = 60_000,
): Promise<Manifest[]> {
  const deadline = Date.now() + timeoutMs;
  const found = new Map<string, Manifest>();
  while (found.size < keys.length && Date.now() < deadline) {
    for (const key of keys) {
      if (found.has(key)) continue;
      try {
        const res = await s3.send(new GetObjectCommand({ Bucket: 'lake', Key: manifestKeyOf('raw', key) }));
        found.set(key, manifestSchema.parse(JSON.parse(await res.Body!.transformToString())));
      } catch {
        // not there yet
      }
    }
    if (found.size < keys.length) await new Promise((r) => setTimeout(r, 200));
  }
  return keys.flatMap((k) => (found.has(k) ? [found.get(k)!] : []));
}
