import { GetObjectCommand, S3ServiceException } from '@aws-sdk/client-s3';
import { referenceKey } from '../contracts/keys.js';
import { type Devices, type ErrorCodes, parseDevices, parseErrorCodes } from '../contracts/reference.js';
import { isNotFound, s3, stripETag } from './s3.js';

export interface Reference {
  devices: Devices;
  errorCodes: ErrorCodes;
  /** Where each came from (`s3://…#etag` or `bundled`), for the logs and the warehouse. */
  sources: { devices: string; errorCodes: string };
}

interface Cached<T> {
  eTag: string;
  value: T;
}

/**
 * Reference data with hot reload: each call checks the lake's `reference/` objects with a conditional
 * GET (`If-None-Match` on the cached ETag — one cheap request per file), so an uploaded registry is
 * used from the next file on. When no object has been uploaded, the bundled files are used. A broken
 * upload fails the file (retried, then DLQ) rather than silently enriching with stale data.
 */
export class ReferenceStore {
  private devices?: Cached<Devices>;
  private errorCodes?: Cached<ErrorCodes>;

  constructor(
    private readonly bucket: string,
    private readonly bundled: { devices: Devices; errorCodes: ErrorCodes },
  ) {}

  async current(): Promise<Reference> {
    this.devices = await this.refresh('devices', this.devices, parseDevices);
    this.errorCodes = await this.refresh('errorCodes', this.errorCodes, parseErrorCodes);
    return {
      devices: this.devices?.value ?? this.bundled.devices,
      errorCodes: this.errorCodes?.value ?? this.bundled.errorCodes,
      sources: {
        devices: this.devices
          ? `s3://${this.bucket}/${referenceKey('devices')}#${this.devices.eTag}`
          : 'bundled',
        errorCodes: this.errorCodes
          ? `s3://${this.bucket}/${referenceKey('errorCodes')}#${this.errorCodes.eTag}`
          : 'bundled',
      },
    };
  }

  private async refresh<T>(
    name: 'devices' | 'errorCodes',
    cached: Cached<T> | undefined,
    parse: (text: string, where: string) => T,
  ): Promise<Cached<T> | undefined> {
    const key = referenceKey(name);
    try {
      const res = await s3().send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          IfNoneMatch: cached ? `"${cached.eTag}"` : undefined,
        }),
      );
      const eTag = stripETag(res.ETag);
      if (cached && eTag === cached.eTag) {
        await res.Body?.transformToString();
        return cached;
      }
      return { eTag, value: parse(await res.Body!.transformToString('utf8'), `s3://${this.bucket}/${key}`) };
    } catch (err) {
      if (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 304) return cached;
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }
}
