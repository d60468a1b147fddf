import type { Readable } from 'node:stream';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import type { Source } from '../contracts/factories.js';
import { classify, FetchError, type RemoteFile, type SourceClient } from './remote.js';

type S3Source = Extract<Source, { type: 's3' }>;

/** Another bucket (another account or an S3-compatible store) as a source; credentials from the default chain. */
export function connectS3(source: S3Source, name: string): SourceClient {
  const client = new S3Client({
    region: source.region ?? process.env.AWS_REGION ?? 'us-east-1',
    ...(source.endpoint ? { endpoint: source.endpoint, forcePathStyle: true } : {}),
  });
  const key = (file: RemoteFile) => `${source.prefix}${file.path}`;
  return {
    async list() {
      const out: RemoteFile[] = [];
      let token: string | undefined;
      try {
        do {
          const page = await client.send(
            new ListObjectsV2Command({
              Bucket: source.bucket,
              Prefix: source.prefix,
              ContinuationToken: token,
            }),
          );
          for (const o of page.Contents ?? []) {
            if (o.Key!.endsWith('/')) continue;
            out.push({ path: o.Key!.slice(source.prefix.length), size: o.Size, mtime: o.LastModified });
          }
          token = page.NextContinuationToken;
        } while (token);
      } catch (err) {
        throw new FetchError(
          name,
          classify(err),
          `cannot list s3://${source.bucket}/${source.prefix}: ${(err as Error).message}`,
          { cause: err },
        );
      }
      return out;
    },
    async open(file) {
      const res = await client.send(new GetObjectCommand({ Bucket: source.bucket, Key: key(file) }));
      return res.Body as Readable;
    },
    async remove(file) {
      await client.send(new DeleteObjectCommand({ Bucket: source.bucket, Key: key(file) }));
    },
    async close() {
      client.destroy();
    },
  };
}
