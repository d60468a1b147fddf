import { isUtf8 } from 'node:buffer';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

/**
 * The byte-level pass between the download and DuckDB. It does what DuckDB's text readers cannot do
 * without losing lines: number every line, and take out lines DuckDB would refuse (invalid UTF-8, NUL
 * bytes, over-long lines) as rejects with a reason. Everything else is written through unchanged into
 * chunk files that DuckDB reads in parallel (`read_text` + `string_split`). A rejected line is written as
 * an empty line so that line numbers stay aligned; it is excluded again in SQL by its number.
 *
 * Work per byte is native (`isUtf8`, `indexOf`): a chunk with no bad line is copied as it is.
 */

export interface LineChunk {
  path: string;
  /** Number (1-based) of the chunk's first line in the original file. */
  firstLine: number;
  lines: number;
}

export interface SplitReject {
  line: number;
  raw: string;
  reason: string;
}

export interface SplitResult {
  chunks: LineChunk[];
  totalLines: number;
  bytes: number;
  rejects: SplitReject[];
  /** The first non-blank, valid lines, for format detection. */
  sample: string[];
  /** Number of the first non-blank line (a CSV header), valid or rejected, when there is one. */
  firstLine?: number;
  /** True when the object looks binary (NUL bytes early on): the caller quarantines it whole. */
  binary: boolean;
  /**
   * Lines end in a lone carriage return (classic Mac OS, some instruments): decided on the first line
   * ending, and then every CR in the object ends a line.
   */
  loneCr: boolean;
}

export interface SplitOptions {
  dir: string;
  maxLineBytes: number;
  chunkBytes?: number;
  sampleLines?: number;
  /**
   * Chunks per batch handed to the consumer (default 8: 32 MB of text at 4 MB chunks). Measured on a
   * 1 GB file with DuckDB at 204 MB: 16 MB batches peak at 375 MB RSS (16 s), 32 MB at 430 MB (13 s),
   * 64 MB at 510 MB (13 s), the whole file at 500–570 MB (19 s).
   */
  batchChunks?: number;
  /**
   * Batches written but not yet taken before the splitter waits for its consumer (default: never
   * waits). Bounds the temporary disk when the consumer deletes what it has processed.
   */
  aheadBatches?: number;
}

/** A split in progress: batches of chunks can be processed while the rest of the input is read. */
export interface SplitStream {
  /** Filled in as the input is read; complete once `batches` has ended. */
  result: SplitResult;
  /** Groups of `batchChunks` chunks, in order, each as soon as it is written; ends with the input. */
  batches: AsyncIterable<LineChunk[]>;
  /** The complete result; rejects with the input's error (e.g. corrupt gzip). */
  done: Promise<SplitResult>;
}

/** Thrown into the splitter when its consumer stops taking batches. */
class SplitCancelled extends Error {
  override name = 'SplitCancelled';
}

/**
 * A one-producer, one-consumer queue of batches with a bound on how far the producer may run ahead.
 * Nothing is handed out before `release()` (or the end): the first batch must come with the complete
 * sample and the binary check behind it. Until then the producer is not held back.
 */
class BatchQueue {
  private readonly items: LineChunk[][] = [];
  private ended = false;
  private error: unknown;
  private released = false;
  /** The consumer has gone (stopped early or failed): the producer must stop. */
  cancelled = false;
  private wakeConsumer: (() => void) | undefined;
  private wakeProducer: (() => void) | undefined;

  push(batch: LineChunk[]): void {
    this.items.push(batch);
    this.wakeConsumer?.();
  }

  release(): void {
    this.released = true;
    this.wakeConsumer?.();
  }

  end(error?: unknown): void {
    this.ended = true;
    this.error = error;
    this.wakeConsumer?.();
  }

  /** Throws once the consumer has gone. */
  check(): void {
    if (this.cancelled) throw new SplitCancelled('the consumer stopped taking batches');
  }

  /** Waits while `limit` batches are pending (once released); throws once the consumer has gone. */
  async room(limit: number): Promise<void> {
    while (!this.cancelled && this.released && this.items.length >= limit) {
      await new Promise<void>((resolve) => {
        this.wakeProducer = resolve;
      });
    }
    this.check();
  }

  async *drain(): AsyncGenerator<LineChunk[]> {
    try {
      for (;;) {
        // An input error ends the split at once: batches still queued are not worth parsing.
        if (this.ended && this.error !== undefined) throw this.error;
        const next = this.released || this.ended ? this.items.shift() : undefined;
        if (next) {
          this.wakeProducer?.();
          yield next;
          continue;
        }
        if (this.ended) return;
        await new Promise<void>((resolve) => {
          this.wakeConsumer = resolve;
        });
      }
    } finally {
      this.cancelled = true;
      this.wakeProducer?.();
    }
  }
}

const NL = 0x0a;
const CR = 0x0d;

/** A copy with every CR turned into a LF (the input's buffers are not ours to change). */
function crToLf(data: Buffer): Buffer {
  let cr = data.indexOf(CR);
  if (cr < 0) return data;
  const out = Buffer.from(data);
  while (cr >= 0) {
    out[cr] = NL;
    cr = out.indexOf(CR, cr + 1);
  }
  return out;
}
/** An object with a NUL byte this early is binary, not a text log. */
const BINARY_HEAD_BYTES = 8192;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
/** Bytes of an over-long or invalid line kept in its reject record; the raw object keeps all of it. */
const REJECT_KEEP_BYTES = 4096;

/** Splits the whole input; for batches as they are written, see startSplit. */
export async function splitLines(input: Readable, options: SplitOptions): Promise<SplitResult> {
  return startSplit(input, options).done;
}

export function startSplit(input: Readable, options: SplitOptions): SplitStream {
  const result: SplitResult = {
    chunks: [],
    totalLines: 0,
    bytes: 0,
    rejects: [],
    sample: [],
    binary: false,
    loneCr: false,
  };
  const queue = new BatchQueue();
  const done = split(input, options, result, queue).then(
    () => {
      queue.end();
      return result;
    },
    // (Leaving `for await` early has already destroyed the input.)
    (err: unknown) => {
      queue.end(err);
      throw err;
    },
  );
  // A consumer sees the error through `batches`; `done` may then go unawaited.
  done.catch(() => {});
  return { result, batches: queue.drain(), done };
}

async function split(input: Readable, options: SplitOptions, result: SplitResult, queue: BatchQueue) {
  // Chunks of a few MB: DuckDB reads the chunk files in parallel, one file per thread at a time.
  const chunkBytes = options.chunkBytes ?? 4 * 1024 * 1024;
  const sampleLines = options.sampleLines ?? 64;
  const batchChunks = options.batchChunks ?? 8;
  const aheadBatches = options.aheadBatches ?? Number.POSITIVE_INFINITY;
  if (!(aheadBatches >= 1) || !(batchChunks >= 1)) {
    throw new RangeError(`aheadBatches (${aheadBatches}) and batchChunks (${batchChunks}) must be ≥ 1`);
  }
  let pending: LineChunk[] = [];

  let out: WriteStream | undefined;
  let current: LineChunk | undefined;
  let currentBytes = 0;
  let carry: Buffer | undefined;
  /** Set while skipping the rest of an over-long line: its bytes are dropped until the next newline. */
  let overlong: { line: number; head: Buffer; bytes: number } | undefined;
  let headBytes = 0;
  let bomChecked = false;
  /** Whether the line endings have been looked at (on the first line ending in the input). */
  let endingsChecked = false;
  /** Undecided yet, and the first line ending seen so far is a CR that ended a piece. */
  let crEndedPiece = false;

  const openChunk = () => {
    current = {
      // Named after its first line's number, which is all the SQL side needs to number its lines.
      path: join(options.dir, `chunk-${String(result.totalLines + 1).padStart(12, '0')}.txt`),
      firstLine: result.totalLines + 1,
      lines: 0,
    };
    result.chunks.push(current);
    out = createWriteStream(current.path);
    // Kept until the stream is closed: a write error fails the split instead of the process.
    out.on('error', (err) => {
      writeError ??= err;
    });
    currentBytes = 0;
  };
  let writeError: Error | undefined;
  const write = async (buf: Buffer) => {
    if (!out) openChunk();
    currentBytes += buf.length;
    const stream = out!;
    if (!stream.write(buf)) {
      await new Promise<void>((resolve, reject) => {
        const done = (err?: Error) => {
          stream.off('drain', done);
          stream.off('error', done);
          if (err) reject(err);
          else resolve();
        };
        stream.once('drain', done);
        stream.once('error', done);
      });
    }
    if (writeError) throw writeError;
  };
  /** Closes the chunk being written and hands it on once its batch is complete. */
  const closeChunk = async () => {
    if (!out) return;
    const stream = out;
    const chunk = current!;
    out = undefined;
    // After a write error the stream is destroyed: the error (ENOSPC, say) is what to report, not end().
    if (!writeError) {
      await new Promise<void>((resolve, reject) =>
        // The stream may be destroyed by a write error whose 'error' event has not fired yet.
        stream.end((err?: Error | null) => (err ? reject(writeError ?? stream.errored ?? err) : resolve())),
      );
    }
    if (writeError) throw writeError;
    if (chunk.lines === 0) return;
    pending.push(chunk);
    if (pending.length >= batchChunks) {
      queue.push(pending);
      pending = [];
      if (result.sample.length >= sampleLines && headBytes >= BINARY_HEAD_BYTES) queue.release();
      await queue.room(aheadBatches);
    }
  };
  const reject = (line: number, bytes: Buffer, reason: string) => {
    // A rejected line is never blank: it may be the first non-blank line (a CSV header that is unusable).
    result.firstLine ??= line;
    result.rejects.push({ line, raw: bytes.subarray(0, REJECT_KEEP_BYTES).toString('utf8'), reason });
  };
  /** `lineNumber` is the line's number in the file. Blank is what the SQL side calls blank (see isBlank). */
  const addSample = (line: Buffer, lineNumber: number) => {
    if (result.sample.length >= sampleLines) return;
    const text = line.toString('utf8').replace(/\r+$/, '');
    if (isBlank(text)) return;
    result.firstLine ??= lineNumber;
    result.sample.push(text);
  };

  /** Classifies one complete line (without its newline). Returns the bytes to write for it. */
  const lineProblem = (line: Buffer): string | undefined => {
    if (line.length > options.maxLineBytes) {
      return `line is ${line.length} bytes, over the ${options.maxLineBytes}-byte limit (first ${REJECT_KEEP_BYTES} bytes kept)`;
    }
    if (line.includes(0)) return 'line contains NUL bytes (binary data)';
    if (!isUtf8(line)) return `invalid UTF-8 at byte ${firstInvalidUtf8(line)}`;
    return undefined;
  };

  /**
   * Makes the chunk the next line goes into current. A chunk ends with the line that takes it to
   * `chunkBytes`: chunk boundaries depend on the content only, never on how the stream was cut.
   */
  const ensureChunk = async () => {
    if (!current || currentBytes >= chunkBytes) {
      await closeChunk();
      openChunk();
    }
  };

  /** Writes a region of complete lines (each ending in \n). */
  const writeRegion = async (region: Buffer) => {
    let slowPath = !isUtf8(region) || region.includes(0);
    if (!slowPath && region.length > options.maxLineBytes) {
      for (let pos = 0; pos < region.length; ) {
        const end = region.indexOf(NL, pos);
        if (end - pos > options.maxLineBytes) {
          slowPath = true;
          break;
        }
        pos = end + 1;
      }
    }
    if (!slowPath) {
      // Every line is fine: count them, and copy the region in as few writes as the chunking allows.
      await ensureChunk();
      let start = 0;
      let lines = 0;
      for (let pos = 0; pos < region.length; ) {
        const end = region.indexOf(NL, pos);
        lines++;
        if (result.sample.length < sampleLines)
          addSample(region.subarray(pos, end), result.totalLines + lines);
        pos = end + 1;
        if (currentBytes + (pos - start) >= chunkBytes || pos === region.length) {
          current!.lines += lines;
          result.totalLines += lines;
          await write(region.subarray(start, pos));
          start = pos;
          lines = 0;
          if (pos < region.length) await ensureChunk();
        }
      }
      return;
    }
    // Slow path: at least one line is bad; go line by line.
    for (let pos = 0; pos < region.length; ) {
      const end = region.indexOf(NL, pos);
      const line = region.subarray(pos, end);
      await ensureChunk();
      result.totalLines++;
      current!.lines++;
      const problem = lineProblem(line);
      if (problem) {
        reject(result.totalLines, line, problem);
        await write(Buffer.from([NL]));
      } else {
        addSample(line, result.totalLines);
        await write(region.subarray(pos, end + 1));
      }
      pos = end + 1;
    }
  };

  const finishOverlong = async () => {
    if (!overlong) return;
    await ensureChunk();
    result.totalLines++;
    current!.lines++;
    reject(
      overlong.line,
      overlong.head,
      `line is ${overlong.bytes} bytes, over the ${options.maxLineBytes}-byte limit (first ${REJECT_KEEP_BYTES} bytes kept)`,
    );
    await write(Buffer.from([NL]));
    overlong = undefined;
  };

  try {
    for await (const piece of input) {
      queue.check();
      let data = piece as Buffer;
      result.bytes += data.length;
      if (headBytes < BINARY_HEAD_BYTES) {
        // The first 8 KiB of the object, however the stream cut them.
        const head = data.subarray(0, BINARY_HEAD_BYTES - headBytes);
        headBytes += head.length;
        if (head.includes(0)) {
          result.binary = true;
          // Drain nothing further: the caller quarantines the whole object.
          input.destroy();
          break;
        }
      }
      if (!endingsChecked && crEndedPiece && data.length > 0) {
        // The last piece's first line ending was the CR it ended with: this piece's first byte decides.
        endingsChecked = true;
        result.loneCr = data[0] !== NL;
        if (result.loneCr && overlong) {
          // That CR ended the over-long line it was read into: the line is complete, less the CR.
          if (overlong.head[overlong.head.length - 1] === CR) overlong.head = overlong.head.subarray(0, -1);
          overlong.bytes -= 1;
          await finishOverlong();
        }
      } else if (!endingsChecked) {
        const cr = data.indexOf(CR);
        const nl = data.indexOf(NL);
        // Decided by the first line ending: a CR that a LF does not follow.
        if (nl >= 0 && (cr < 0 || nl < cr)) endingsChecked = true;
        else if (cr >= 0 && cr + 1 < data.length) {
          endingsChecked = true;
          result.loneCr = data[cr + 1] !== NL;
        } else if (cr >= 0) crEndedPiece = true;
      }
      if (result.loneCr) data = crToLf(data);
      if (overlong) {
        const nl = data.indexOf(NL);
        const part = nl < 0 ? data : data.subarray(0, nl);
        if (overlong.head.length < REJECT_KEEP_BYTES) {
          overlong.head = Buffer.concat([
            overlong.head,
            part.subarray(0, REJECT_KEEP_BYTES - overlong.head.length),
          ]);
        }
        overlong.bytes += part.length;
        if (nl < 0) continue;
        await finishOverlong();
        data = data.subarray(nl + 1);
      }
      if (carry) {
        // (A CR held back before the line endings were decided is turned here.)
        data = Buffer.concat([carry, data]);
        carry = undefined;
        if (result.loneCr) data = crToLf(data);
      }
      if (!bomChecked && (data.length >= 3 || data.includes(NL))) {
        bomChecked = true;
        if (data.subarray(0, 3).equals(BOM)) data = data.subarray(3);
      }
      const lastNl = data.lastIndexOf(NL);
      if (lastNl < 0) {
        if (data.length > options.maxLineBytes) {
          overlong = {
            line: result.totalLines + 1,
            head: Buffer.from(data.subarray(0, REJECT_KEEP_BYTES)),
            bytes: data.length,
          };
        } else {
          carry = data;
        }
        continue;
      }
      await writeRegion(data.subarray(0, lastNl + 1));
      const rest = data.subarray(lastNl + 1);
      if (rest.length > options.maxLineBytes) {
        overlong = {
          line: result.totalLines + 1,
          head: Buffer.from(rest.subarray(0, REJECT_KEEP_BYTES)),
          bytes: rest.length,
        };
      } else if (rest.length > 0) {
        carry = Buffer.from(rest);
      }
    }
    if (!result.binary) {
      await finishOverlong();
      // The input ended on the CR that was its first line ending: a lone CR.
      if (!endingsChecked && crEndedPiece) {
        result.loneCr = true;
        if (carry) carry = crToLf(carry);
      }
      // (writeRegion takes any number of lines: a carry turned from CRs holds several.)
      if (carry && carry.length > 0) {
        // A carry turned from CRs may already end its last line.
        await writeRegion(carry[carry.length - 1] === NL ? carry : Buffer.concat([carry, Buffer.from([NL])]));
      }
    }
  } finally {
    await closeChunk();
  }
  // A file whose first chunk was opened but got no line (e.g. binary) leaves an empty chunk: drop it.
  result.chunks = result.chunks.filter((c) => c.lines > 0);
  if (pending.length > 0) queue.push(pending);
}

/**
 * A blank line: nothing but ASCII spaces once trailing carriage returns are cut — exactly what the SQL
 * side (`trim(rtrim(raw, chr(13)), ' ') = ''`) counts as blank, so both agree on which line is the header.
 */
export function isBlank(text: string): boolean {
  return /^ *$/.test(text.replace(/\r+$/, ''));
}

/** Byte offset of the first invalid UTF-8 sequence, for the reject reason (only run on bad lines). */
export function firstInvalidUtf8(buf: Buffer): number {
  let i = 0;
  while (i < buf.length) {
    const b = buf[i]!;
    const len =
      b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (len === 0 || i + len > buf.length || !isUtf8(buf.subarray(i, i + len))) return i;
    i += len;
  }
  return buf.length;
}
