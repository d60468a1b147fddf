import { validateBucketName } from './bucket-name.js';
import { type Reply, type RequestContext, xmlReply } from './request-context.js';
import { element, s3Document } from './xml.js';

/** ListBuckets. https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListBuckets.html */
export async function listBuckets(ctx: RequestContext): Promise<Reply> {
  const { index, owner } = ctx.emulator;
  return xmlReply(
    s3Document(
      'ListAllMyBucketsResult',
      element('Owner', element('ID', owner.id), element('DisplayName', owner.displayName)),
      element(
        'Buckets',
        index
          .buckets()
          .map((b) =>
            element(
              'Bucket',
              element('Name', b.name),
              element('CreationDate', new Date(b.createdMs).toISOString()),
            ),
          ),
      ),
    ),
  );
}

/**
 * CreateBucket. Creating a bucket one already owns succeeds, as in us-east-1 (elsewhere S3 answers 409
 * BucketAlreadyOwnedByYou, which clients treat as success too). The body (CreateBucketConfiguration,
 * a location constraint) is not read: there is one region.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html
 */
export async function createBucket(ctx: RequestContext, bucket: string): Promise<Reply> {
  validateBucketName(bucket);
  ctx.emulator.index.createBucket(bucket, Date.now());
  return { status: 200, headers: { location: `/${bucket}` } };
}

/** HeadBucket: 200 with the bucket's region, or 404 NoSuchBucket. */
export async function headBucket(ctx: RequestContext, bucket: string): Promise<Reply> {
  ctx.emulator.index.requireBucket(bucket);
  return { status: 200, headers: { 'x-amz-bucket-region': ctx.emulator.region } };
}

/** DeleteBucket: only an empty bucket (409 BucketNotEmpty); uploads in progress go with it. */
export async function deleteBucket(ctx: RequestContext, bucket: string): Promise<Reply> {
  const { index, store } = ctx.emulator;
  await store.remove(index.deleteBucket(bucket));
  return { status: 204 };
}

/**
 * GetBucketLocation: the region, empty for us-east-1 as S3 answers.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketLocation.html
 */
export async function getBucketLocation(ctx: RequestContext, bucket: string): Promise<Reply> {
  const { index, region } = ctx.emulator;
  index.requireBucket(bucket);
  return xmlReply(s3Document('LocationConstraint', region === 'us-east-1' ? '' : region));
}
