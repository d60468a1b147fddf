import {
  createBucket,
  deleteBucket,
  getBucketLocation,
  headBucket,
  listBuckets,
} from './bucket-operations.js';
import { deleteObjects } from './delete-objects.js';
import { S3Error } from './errors.js';
import { listObjectsV1, listObjectsV2 } from './list-objects.js';
import {
  abortMultipartUpload,
  completeMultipartUpload,
  createMultipartUpload,
  listMultipartUploads,
  listParts,
  uploadPart,
  uploadPartCopy,
} from './multipart-operations.js';
import { copyObject, deleteObject, getObject, putObject } from './object-operations.js';
import type { Reply, RequestContext } from './request-context.js';

/** An S3 operation, by its API name (for logs and NotImplemented answers), ready to run. */
export interface Route {
  operation: string;
  run(ctx: RequestContext): Promise<Reply>;
}

/**
 * Subresources of S3's API that this emulator does not implement. A request naming one is answered
 * 501 NotImplemented rather than mistaken for a plain GET or PUT of the bucket or object.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_Operations_Amazon_Simple_Storage_Service.html
 */
const UNSUPPORTED = new Set([
  'accelerate',
  'acl',
  'analytics',
  'attributes',
  'cors',
  'encryption',
  'intelligent-tiering',
  'inventory',
  'legal-hold',
  'lifecycle',
  'logging',
  'metrics',
  'notification',
  'object-lock',
  'ownershipControls',
  'policy',
  'policyStatus',
  'publicAccessBlock',
  'replication',
  'requestPayment',
  'restore',
  'retention',
  'select',
  'tagging',
  'torrent',
  'versionId',
  'versioning',
  'versions',
  'website',
]);

/** API names that do not follow the Get/Put/Delete + Bucket/Object + subresource pattern. */
const IRREGULAR_NAMES: Record<string, string> = {
  restore: 'RestoreObject',
  select: 'SelectObjectContent',
  versionId: 'object versions',
  versions: 'ListObjectVersions',
};

/** The API name of a request on a subresource: PUT object ?tagging → PutObjectTagging. */
function subresourceOperation(method: string, level: string, subresource: string): string {
  const capitalised = (word: string) => word.charAt(0).toUpperCase() + word.slice(1);
  const verb = capitalised(method.toLowerCase());
  const noun = subresource.split('-').map(capitalised).join('');
  return IRREGULAR_NAMES[subresource] ?? `${verb}${capitalised(level)}${noun}`;
}

function notImplemented(operation: string): Route {
  return {
    operation,
    run: async () => {
      throw new S3Error('NotImplemented', `${operation} is not supported by the local S3 emulator.`);
    },
  };
}

function methodNotAllowed(method: string): Route {
  return {
    operation: method,
    run: async () => {
      throw new S3Error('MethodNotAllowed', undefined, { Method: method });
    },
  };
}

type BucketOperation = (ctx: RequestContext, bucket: string) => Promise<Reply>;
type ObjectOperation = (ctx: RequestContext, bucket: string, key: string) => Promise<Reply>;

/** A bucket-level operation; `method` is one of METHODS. */
function bucketRoute(
  method: string,
  query: ReadonlyMap<string, string>,
): [string, BucketOperation] | undefined {
  switch (method) {
    case 'GET':
      if (query.has('location')) return ['GetBucketLocation', getBucketLocation];
      if (query.has('uploads')) return ['ListMultipartUploads', listMultipartUploads];
      if (query.get('list-type') === '2') return ['ListObjectsV2', listObjectsV2];
      return ['ListObjects', listObjectsV1];
    case 'HEAD':
      return ['HeadBucket', headBucket];
    case 'PUT':
      return ['CreateBucket', createBucket];
    case 'DELETE':
      return ['DeleteBucket', deleteBucket];
    default:
      return query.has('delete') ? ['DeleteObjects', deleteObjects] : undefined;
  }
}

/** An object-level operation; `method` is one of METHODS. */
function objectRoute(
  method: string,
  query: ReadonlyMap<string, string>,
  copy: boolean,
): [string, ObjectOperation] | undefined {
  const upload = query.has('uploadId');
  switch (method) {
    case 'GET':
      if (query.has('partNumber')) return undefined;
      return upload ? ['ListParts', listParts] : ['GetObject', getObject];
    case 'HEAD':
      return query.has('partNumber') ? undefined : ['HeadObject', getObject];
    case 'PUT':
      if (upload) return copy ? ['UploadPartCopy', uploadPartCopy] : ['UploadPart', uploadPart];
      return copy ? ['CopyObject', copyObject] : ['PutObject', putObject];
    case 'DELETE':
      return upload ? ['AbortMultipartUpload', abortMultipartUpload] : ['DeleteObject', deleteObject];
    default:
      if (query.has('uploads')) return ['CreateMultipartUpload', createMultipartUpload];
      return upload ? ['CompleteMultipartUpload', completeMultipartUpload] : undefined;
  }
}

const METHODS = new Set(['GET', 'HEAD', 'PUT', 'POST', 'DELETE']);

/** Picks the operation a request is, from its method, what it addresses and its subresources. */
export function route(
  method: string,
  target: { bucket: string | undefined; key: string | undefined; query: ReadonlyMap<string, string> },
  copySource: boolean,
): Route {
  const { bucket, key, query } = target;
  if (!METHODS.has(method)) return methodNotAllowed(method);
  const level = bucket === undefined ? 'service' : key === undefined ? 'bucket' : 'object';
  // The AWS SDKs name some operations in `x-id`; otherwise the request's shape names it.
  const unknown = (names: string[]) =>
    notImplemented(
      query.get('x-id') ?? `${method} on the ${level}${names.length ? ` ?${names.join('&')}` : ''}`,
    );
  const unsupported = [...query.keys()].find((name) => UNSUPPORTED.has(name));
  if (unsupported !== undefined) {
    return notImplemented(query.get('x-id') ?? subresourceOperation(method, level, unsupported));
  }
  if (bucket === undefined) {
    return method === 'GET' ? { operation: 'ListBuckets', run: listBuckets } : unknown([]);
  }
  if (key === undefined) {
    const found = bucketRoute(method, query);
    if (!found) return unknown([...query.keys()]);
    const [operation, run] = found;
    return { operation, run: (ctx) => run(ctx, bucket) };
  }
  const found = objectRoute(method, query, copySource);
  if (!found) return unknown([...query.keys()]);
  const [operation, run] = found;
  return { operation, run: (ctx) => run(ctx, bucket, key) };
}
