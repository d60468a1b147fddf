import { S3Error } from './errors.js';
import { type Reply, type RequestContext, xmlReply } from './request-context.js';
import { childrenNamed, childText, element, s3Document } from './xml.js';
import { readXmlBody } from './xml-body.js';

/** S3 deletes at most 1,000 keys per request. */
const MAX_KEYS = 1000;

/**
 * DeleteObjects: `<Delete><Quiet>…</Quiet><Object><Key>…</Key></Object>…</Delete>`. Keys that do not
 * exist count as deleted, as in S3; Quiet leaves them out of the answer.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html
 */
export async function deleteObjects(ctx: RequestContext, bucket: string): Promise<Reply> {
  const { index, store } = ctx.emulator;
  index.requireBucket(bucket);
  const request = await readXmlBody(ctx, 'Delete');
  const keys = childrenNamed(request, 'Object').map((o) => childText(o, 'Key') ?? '');
  if (keys.length === 0 || keys.length > MAX_KEYS || keys.includes('')) {
    throw new S3Error('MalformedXML', `Delete takes 1 to ${MAX_KEYS} <Object> elements, each with a <Key>.`);
  }
  const quiet = childText(request, 'Quiet')?.trim() === 'true';
  await store.remove(index.deleteObjects(bucket, keys));
  return xmlReply(
    s3Document('DeleteResult', !quiet && keys.map((key) => element('Deleted', element('Key', key)))),
  );
}
