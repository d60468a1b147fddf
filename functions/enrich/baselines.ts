import { join } from 'node:path';
import { BASELINES_KEY } from '../contracts/keys.js';
import { downloadIfChanged } from '../core/s3.js';

/** Where the warehouse publishes per-(factory, device, metric) baselines for the enrich function. */

/**
 * The latest published baselines, cached in /tmp by ETag. `undefined` until the warehouse has
 * published any (a fresh deployment): enrichment then uses the current file's own statistics.
 */
export class BaselineCache {
  private eTag: string | undefined;
  readonly path: string;

  constructor(
    private readonly bucket: string,
    dir: string,
  ) {
    this.path = join(dir, 'baselines.parquet');
  }

  async current(): Promise<string | undefined> {
    this.eTag = await downloadIfChanged(this.bucket, BASELINES_KEY, this.path, this.eTag);
    return this.eTag ? this.path : undefined;
  }
}
