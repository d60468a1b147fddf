import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MessageFormatError } from '../../functions/core/errors.js';
import {
  buildS3Notification,
  decodeEventKey,
  encodeEventKey,
  parseS3Notification,
} from '../../functions/core/s3-event.js';

const fixture = (name: string) => readFileSync(new URL(`../../events/${name}`, import.meta.url), 'utf8');

describe('S3 event keys', () => {
  it.each([
    ['plain/key.log', 'plain/key.log'],
    ['with+space.log', 'with space.log'],
    ['plus%2Bsign.log', 'plus+sign.log'],
    ['demo%2F2026%2F01%2F15%2Fa.log', 'demo/2026/01/15/a.log'],
    ['unicode/%C3%BCber+%E2%82%AC.log', 'unicode/über €.log'],
    ['percent%25literal.log', 'percent%literal.log'],
  ])('decodes %s as %s', (encoded, decoded) => {
    expect(decodeEventKey(encoded)).toBe(decoded);
  });

  it.each(['a b/c+d.log', 'ü/€ %/x.jsonl', 'quote\'"/x', 'plain/key'])('round-trips %s', (key) => {
    expect(decodeEventKey(encodeEventKey(key))).toBe(key);
  });
});

describe('parseS3Notification', () => {
  it('reads the AWS S3 event in an SQS body, key decoded', () => {
    const sqs = JSON.parse(fixture('sqs-s3-put.json'));
    const events = parseS3Notification(sqs.Records[0].body, 'm1');
    expect(events).toEqual([
      expect.objectContaining({
        bucket: 'raw',
        key: 'demo/2026/01/15/press line+1 sensors.jsonl',
        eventName: 'ObjectCreated:Put',
      }),
    ]);
  });

  it("reads MinIO's webhook body (eventSource minio:s3, s3: prefix, %2F in keys)", () => {
    const events = parseS3Notification(fixture('minio-webhook.json'), 'm2');
    expect(events).toEqual([
      expect.objectContaining({
        bucket: 'raw',
        key: 'demo/2026/01/15/press line+1 sensors.jsonl',
        eventName: 'ObjectCreated:Put',
        eTag: 'd41d8cd98f00b204e9800998ecf8427e',
      }),
    ]);
  });

  it('skips s3:TestEvent', () => {
    expect(parseS3Notification(fixture('s3-test-event.json'), 'm3')).toEqual([]);
  });

  it('skips events other than ObjectCreated', () => {
    const body = JSON.parse(fixture('s3-put.json'));
    body.Records[0].eventName = 'ObjectRemoved:Delete';
    expect(parseS3Notification(body, 'm4')).toEqual([]);
  });

  it.each([
    ['not JSON', 'nope{'],
    ['not a notification', '{"hello":"world"}'],
    ['records without s3', '{"Records":[{"eventName":"ObjectCreated:Put"}]}'],
    [
      'a malformed percent escape',
      JSON.stringify({
        Records: [
          { eventName: 'ObjectCreated:Put', s3: { bucket: { name: 'raw' }, object: { key: 'bad%ZZ' } } },
        ],
      }),
    ],
  ])('rejects %s with a MessageFormatError naming the message', (_name, body) => {
    expect(() => parseS3Notification(body, 'msg-9')).toThrowError(MessageFormatError);
    expect(() => parseS3Notification(body, 'msg-9')).toThrowError(/message msg-9/);
  });

  it('builds what AWS delivers, which it parses back', () => {
    const built = buildS3Notification({
      bucket: 'raw',
      key: 'a b/c+d.log',
      size: 3,
      eTag: '"abc"',
      eventName: 'ObjectCreated:Put',
    });
    expect(built.Records[0]!.s3.object.key).toBe('a+b/c%2Bd.log');
    expect(parseS3Notification(JSON.stringify(built), 'x')).toEqual([
      expect.objectContaining({ bucket: 'raw', key: 'a b/c+d.log', eTag: 'abc', size: 3 }),
    ]);
  });
});
