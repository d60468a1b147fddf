import { GetObjectCommand, PutObjectCommand, S3ServiceException } from '@aws-sdk/client-s3';
import { z } from 'zod';
import { isNotFound, s3, stripETag } from '../core/s3.js';

/** What a source has delivered, so a second run fetches nothing twice. Kept in the lake bucket. */
export const fetchStateSchema = z.object({
  version: z.literal(1),
  files: z.record(
    z.string(),
    z.object({
      size: z.number().optional(),
      mtime: z.string().optional(),
      sha256: z.string(),
      key: z.string(),
      fetchedAt: z.string(),
    }),
  ),
  /** sha256 → raw key: the same content under a new name is recorded, not uploaded again. */
  hashes: z.record(z.string(), z.string()),
  /** Newest mtime seen; passed to HTTP sources as their `since` parameter. */
  watermark: z.string().optional(),
});
export type FetchState = z.infer<typeof fetchStateSchema>;

/** The state and its ETag (`undefined` before the first run). */
export async function loadFetchState(
  bucket: string,
  key: string,
): Promise<{ state: FetchState; eTag?: string }> {
  try {
    const res = await s3().send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return {
      state: fetchStateSchema.parse(JSON.parse(await res.Body!.transformToString())),
      eTag: stripETag(res.ETag),
    };
  } catch (err) {
    if (isNotFound(err)) return { state: { version: 1, files: {}, hashes: {} } };
    throw err;
  }
}

/** The state changed under us: another run of the same source is going on. */
export class FetchStateConflict extends Error {
  override name = 'FetchStateConflict';
}

/** Saves with a conditional write (If-Match on the ETag read, If-None-Match: * for the first). */
export async function saveFetchState(
  bucket: string,
  key: string,
  state: FetchState,
  eTag: string | undefined,
): Promise<string> {
  try {
    const res = await s3().send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: JSON.stringify(state),
        ContentType: 'application/json',
        ...(eTag ? { IfMatch: `"${eTag}"` } : { IfNoneMatch: '*' }),
      }),
    );
    return stripETag(res.ETag);
  } catch (err) {
    const status = err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
    if (status === 412 || status === 409)
      throw new FetchStateConflict(`s3://${bucket}/${key} changed during the run`, { cause: err });
    throw err;
  }
}
