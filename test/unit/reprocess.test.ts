import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { factoriesLoader } from '../../functions/contracts/factories.js';
import { warehouseMessageSchema } from '../../functions/contracts/messages.js';
import { fromMetadata, toMetadata } from '../../functions/contracts/provenance.js';
import { newReprocess, reprocessSchema } from '../../functions/contracts/reprocess.js';
import { MessageFormatError } from '../../functions/core/errors.js';
import { objectCreatedMessages } from '../../functions/core/notify.js';
import { buildS3Notification, parseS3Notification } from '../../functions/core/s3-event.js';
import { keyMatcher } from '../../local/reprocess.js';

const fixture = (name: string) => readFileSync(new URL(`../../events/${name}`, import.meta.url), 'utf8');
const run = { id: 'rp-20240304T101500-a1b2c3', requestedAt: '2024-03-04T10:15:00.000Z' };

describe('the reprocess marker', () => {
  it('names a run with an id the schema accepts', () => {
    const r = newReprocess(new Date('2024-03-04T10:15:00Z'));
    expect(r.id).toMatch(/^rp-20240304T101500-[0-9a-f]{6}$/);
    expect(reprocessSchema.parse(r)).toEqual(r);
    expect(newReprocess().id).not.toBe(newReprocess().id);
  });

  it('travels beside Records in an S3 notification, and every event of it carries it', () => {
    const body = JSON.stringify(
      buildS3Notification({
        bucket: 'raw',
        key: 'plant/2024/03/04/a b.jsonl',
        size: 1,
        eTag: 'abc',
        eventName: 'ObjectCreated:Put',
        reprocess: run,
      }),
    );
    expect(JSON.parse(body).reprocess).toEqual(run);
    expect(parseS3Notification(body, 'm')).toEqual([
      expect.objectContaining({
        bucket: 'raw',
        key: 'plant/2024/03/04/a b.jsonl',
        eTag: 'abc',
        reprocess: run,
      }),
    ]);
  });

  it('is absent from what S3 and MinIO send, which parse as before', () => {
    const sqs = JSON.parse(fixture('sqs-s3-put.json'));
    for (const events of [
      parseS3Notification(sqs.Records[0].body, 'm1'),
      parseS3Notification(fixture('minio-webhook.json'), 'm2'),
    ]) {
      expect(events).toHaveLength(1);
      expect(events[0]).not.toHaveProperty('reprocess');
    }
  });

  it('makes a body with a malformed marker a message that can never succeed', () => {
    const body = {
      ...buildS3Notification({
        bucket: 'raw',
        key: 'k/x',
        size: 1,
        eTag: 'e',
        eventName: 'ObjectCreated:Put',
      }),
      reprocess: { id: 'no spaces allowed', requestedAt: 'yesterday' },
    };
    expect(() => parseS3Notification(JSON.stringify(body), 'm')).toThrow(MessageFormatError);
  });

  it('goes to the queue the topology routes the object to, as the reconciler sends it', () => {
    const messages = objectCreatedMessages({
      bucket: 'lake',
      key: 'manifests/factory=plant/x.json',
      size: 1,
      eTag: 'e',
      eventName: 'ObjectCreated:Put',
      region: 'us-east-1',
      reprocess: run,
    });
    expect(messages.map((m) => m.queue)).toEqual(['enrich']);
    expect(parseS3Notification(messages[0]!.body, 'm')[0]?.reprocess).toEqual(run);
  });

  it('is carried per file in the warehouse messages enrich sends', () => {
    const file = {
      bucket: 'lake',
      key: 'manifests/factory=p/x.json',
      eTag: 'e',
      enrichedAt: '2024-03-04T10:00:00.000Z',
    };
    const m = {
      kind: 'files',
      files: [file, { ...file, key: 'manifests/factory=p/y.json', reprocess: run }],
    };
    expect(warehouseMessageSchema.parse(m)).toEqual(m);
    expect(warehouseMessageSchema.safeParse({ kind: 'files', files: [] }).success).toBe(false);
  });

  it('is optional on warehouse messages, and checked when present', () => {
    const m = { kind: 'manifest', bucket: 'lake', key: 'manifests/factory=p/x.json', eTag: 'e' };
    expect(warehouseMessageSchema.parse(m)).toEqual(m);
    expect(warehouseMessageSchema.parse({ ...m, reprocess: run })).toEqual({ ...m, reprocess: run });
    expect(warehouseMessageSchema.safeParse({ ...m, reprocess: { id: '' } }).success).toBe(false);
  });

  it('is recorded in a lake object metadata (the run that made it)', () => {
    const p = {
      sourceBucket: 'raw',
      sourceKey: 'plant/2024/03/04/ä.jsonl',
      sourceETag: 'e',
      sourceCreatedAt: '2024-03-04T10:00:00.000Z',
    };
    expect(fromMetadata(toMetadata(p))).toEqual(p);
    expect(toMetadata({ ...p, reprocessId: run.id })['reprocess-id']).toBe(run.id);
    expect(fromMetadata(toMetadata({ ...p, reprocessId: run.id }))).toEqual({ ...p, reprocessId: run.id });
  });
});

describe('reprocess --key', () => {
  it('matches a glob without / against the file name, one with / against the key', () => {
    const csv = keyMatcher('*.csv');
    expect(csv('plant/2024/03/04/press-07.csv')).toBe(true);
    expect(csv('plant/2024/03/04/press-07.jsonl')).toBe(false);
    const day = keyMatcher('plant/2024/03/*/press-*');
    expect(day('plant/2024/03/04/press-07.csv')).toBe(true);
    expect(day('plant/2024/04/04/press-07.csv')).toBe(false);
    expect(keyMatcher(undefined)('anything')).toBe(true);
  });
});

describe('factoriesLoader', () => {
  const yaml = (zone: string) => `version: 1\nfactories:\n  plant:\n    name: Plant\n    timezone: ${zone}\n`;

  it('reads factories.yaml again when it changes, so a fixed rule applies without a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tp-loader-'));
    try {
      await writeFile(join(dir, 'factories.yaml'), yaml('UTC'));
      const current = factoriesLoader(dir);
      const first = current();
      expect(first.factories.get('plant')?.timezone).toBe('UTC');
      expect(current()).toBe(first);
      await writeFile(join(dir, 'factories.yaml'), yaml('Europe/Berlin'));
      expect(current().factories.get('plant')?.timezone).toBe('Europe/Berlin');
      // A change that does not validate fails with the file and path, as at start-up.
      await writeFile(join(dir, 'factories.yaml'), yaml('Mars/Olympus'));
      expect(() => current()).toThrow(/factories\.yaml/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
