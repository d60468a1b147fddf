/**
 * Every error the pipeline raises on purpose. Permanent errors mean the input itself is bad: the object
 * is quarantined and the message acknowledged. Anything else is transient: it is thrown, the message
 * becomes visible again and is retried, and after `maxReceiveCount` it lands in the DLQ.
 */

interface ObjectRef {
  bucket: string;
  key: string;
}

/** Bad input that no retry can fix: quarantine and acknowledge. */
export class PermanentObjectError extends Error {
  override name = 'PermanentObjectError';
  readonly bucket: string;
  readonly key: string;
  /** Stable, machine-readable reason used in metrics and quarantine records. */
  readonly code: string;

  constructor(ref: ObjectRef, code: string, message: string, options?: { cause?: unknown }) {
    super(`s3://${ref.bucket}/${ref.key}: ${message}`, options);
    this.bucket = ref.bucket;
    this.key = ref.key;
    this.code = code;
  }
}

/** A failure talking to S3/SQS/DuckDB that may pass on retry. */
export class TransientObjectError extends Error {
  override name = 'TransientObjectError';
  readonly bucket: string;
  readonly key: string;

  constructor(ref: ObjectRef, message: string, options?: { cause?: unknown }) {
    super(`s3://${ref.bucket}/${ref.key}: ${message}`, options);
    this.bucket = ref.bucket;
    this.key = ref.key;
  }
}

/**
 * The temporary folder filled up while an object was processed. Transient: the message is retried, and
 * once it has gone to the DLQ the reconciler sends the object again (with backoff) until space is back.
 */
export class TempSpaceError extends TransientObjectError {
  override name = 'TempSpaceError';
  readonly code = 'temp-space';

  constructor(
    ref: ObjectRef,
    readonly dir: string,
    readonly neededBytes: number,
    readonly freeBytes: number,
    options?: { cause?: unknown },
  ) {
    super(
      ref,
      `no space left on device in ${dir}: ${mb(freeBytes)} free, processing this object needs about ${mb(neededBytes)} there`,
      options,
    );
  }
}

/**
 * The work on an object was stopped at the function's deadline (a little before it, so that the
 * temporary files are removed and the failure is reported). Transient: the message is retried after its
 * visibility timeout, and no second run of the same object can overlap the first, which has stopped.
 */
export class DeadlineError extends TransientObjectError {
  override name = 'DeadlineError';
  readonly code = 'deadline';

  constructor(ref: ObjectRef, seconds: number, options?: { cause?: unknown }) {
    super(
      ref,
      `stopped after ${seconds.toFixed(0)} s, at the function's time limit; it will be retried`,
      options,
    );
  }
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/**
 * Whether an error is the local file system saying it is full: Node's ENOSPC, or DuckDB's IO error
 * quoting the OS (`Could not write file "…": No space left on device`) — not any message that
 * happens to contain the words, such as one from a remote store.
 */
export function isDiskFull(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) {
    if ((e as NodeJS.ErrnoException).code === 'ENOSPC') return true;
    if (/Could not (write|create|open) file "[^"]*": No space left on device/.test(e.message)) return true;
  }
  return false;
}

/** A configuration file that fails validation; thrown at load so start-up stops with path and reason. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly file: string;

  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super(`${file}: ${message}`, options);
    this.file = file;
  }
}

/** A message body that is not an event we understand (not an S3 notification). */
export class MessageFormatError extends Error {
  override name = 'MessageFormatError';
  readonly messageId: string;

  constructor(messageId: string, message: string, options?: { cause?: unknown }) {
    super(`message ${messageId}: ${message}`, options);
    this.messageId = messageId;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
