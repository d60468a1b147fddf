import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { splitLines, startSplit } from '../../functions/etl/line-splitter.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'split-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Splits `input` fed in pieces of `piece` bytes and returns the chunk contents joined. */
async function split(
  input: Buffer,
  options: { piece?: number; maxLineBytes?: number; chunkBytes?: number } = {},
) {
  const piece = options.piece ?? 3;
  const pieces = Array.from({ length: Math.ceil(input.length / piece) }, (_, i) =>
    input.subarray(i * piece, (i + 1) * piece),
  );
  const result = await splitLines(Readable.from(pieces), {
    dir,
    maxLineBytes: options.maxLineBytes ?? 100,
    chunkBytes: options.chunkBytes ?? 16,
  });
  const text = (await Promise.all(result.chunks.map((c) => readFile(c.path, 'utf8')))).join('');
  return { ...result, text };
}

describe('splitLines', () => {
  it.each([
    ['LF', 'a\nb\nc\n', 3],
    ['no final newline', 'a\nb\nc', 3],
    ['CRLF (CR kept for SQL to trim)', 'a\r\nb\r\n', 2],
    ['blank lines count', 'a\n\n\nb\n', 4],
    ['a single line', 'only', 1],
  ])('counts lines: %s', async (_name, input, lines) => {
    const r = await split(Buffer.from(input));
    expect(r.totalLines).toBe(lines);
    expect(r.rejects).toEqual([]);
  });

  it('drops a UTF-8 BOM at the start of the file only', async () => {
    const r = await split(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('x\ny\n')]), {
      piece: 2,
    });
    expect(r.text).toBe('x\ny\n');
  });

  it('numbers chunks so that every line keeps its number across chunk files', async () => {
    const lines = Array.from({ length: 50 }, (_, i) => `line-${i + 1}`);
    const r = await split(Buffer.from(`${lines.join('\n')}\n`), { chunkBytes: 20, piece: 5 });
    expect(r.chunks.length).toBeGreaterThan(3);
    for (const c of r.chunks) {
      const content = (await readFile(c.path, 'utf8')).split('\n').slice(0, -1);
      expect(content.length).toBe(c.lines);
      expect(content[0]).toBe(`line-${c.firstLine}`);
    }
    expect(r.chunks.reduce((n, c) => n + c.lines, 0)).toBe(50);
  });

  it('cuts chunks by content alone: the same file read in different pieces gives the same chunks', async () => {
    const lines = Array.from(
      { length: 200 },
      (_, i) => `${i % 7 === 0 ? 'x'.repeat(i % 30) : ''}line-${i + 1}`,
    );
    lines[120] = 'bad ? line';
    const input = Buffer.from(`${lines.join('\n')}\n`);
    input[input.indexOf('bad ?') + 4] = 0xff; // invalid UTF-8: a reject, written as an empty line
    const layouts = [];
    for (const piece of [1, 7, 64, input.length]) {
      const r = await split(input, { chunkBytes: 50, piece });
      layouts.push({
        chunks: await Promise.all(
          r.chunks.map(async (c) => [c.firstLine, c.lines, await readFile(c.path, 'utf8')]),
        ),
        rejects: r.rejects,
      });
    }
    expect(layouts[0]!.chunks.length).toBeGreaterThan(20);
    for (const layout of layouts.slice(1)) expect(layout).toEqual(layouts[0]);
    // Each chunk ends with the line that takes it to 50 bytes (the last may be shorter).
    for (const [, , text] of layouts[0]!.chunks.slice(0, -1)) {
      const body = String(text);
      expect(Buffer.byteLength(body)).toBeGreaterThanOrEqual(50);
      expect(Buffer.byteLength(body.slice(0, body.slice(0, -1).lastIndexOf('\n') + 1))).toBeLessThan(50);
    }
  });

  it('rejects an over-long line with its number, keeps numbering, and goes on', async () => {
    const long = 'x'.repeat(500);
    const r = await split(Buffer.from(`ok1\n${long}\nok3\n`), { maxLineBytes: 100, piece: 7 });
    expect(r.totalLines).toBe(3);
    expect(r.rejects).toEqual([
      { line: 2, raw: long, reason: expect.stringMatching(/500 bytes, over the 100-byte limit/) },
    ]);
    expect(r.text).toBe('ok1\n\nok3\n');
  });

  it('rejects an over-long last line without a newline', async () => {
    const r = await split(Buffer.from(`ok\n${'y'.repeat(300)}`), { maxLineBytes: 100, piece: 64 });
    expect(r.totalLines).toBe(2);
    expect(r.rejects.map((x) => x.line)).toEqual([2]);
  });

  it('rejects invalid UTF-8 lines with the byte offset', async () => {
    const bad = Buffer.concat([Buffer.from('ab'), Buffer.from([0xc3, 0x28]), Buffer.from('cd')]);
    const r = await split(Buffer.concat([Buffer.from('good\n'), bad, Buffer.from('\nfine ü\n')]), {
      piece: 4,
    });
    expect(r.totalLines).toBe(3);
    expect(r.rejects).toEqual([{ line: 2, raw: expect.any(String), reason: 'invalid UTF-8 at byte 2' }]);
    expect(r.text).toBe('good\n\nfine ü\n');
  });

  it('flags an object with NUL bytes at the start as binary', async () => {
    const r = await split(Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x00, 0x00, 0x10, 0x0a]), { piece: 64 });
    expect(r.binary).toBe(true);
  });

  it('rejects a NUL byte inside a later line', async () => {
    const r = await split(Buffer.concat([Buffer.from('a'.repeat(9000)), Buffer.from('\nx\u0000y\nz\n')]), {
      piece: 9001,
      maxLineBytes: 10_000,
    });
    expect(r.binary).toBe(false);
    expect(r.rejects).toEqual([
      { line: 2, raw: 'x\u0000y', reason: 'line contains NUL bytes (binary data)' },
    ]);
  });

  it('reports an empty input as zero lines', async () => {
    const r = await split(Buffer.alloc(0));
    expect(r).toMatchObject({ totalLines: 0, chunks: [] });
  });

  it('samples the first non-blank lines for detection', async () => {
    const r = await split(Buffer.from('\n\nfirst\r\nsecond\n'));
    expect(r.sample).toEqual(['first', 'second']);
  });

  it('hands out batches as they are written, and waits for a slow consumer', async () => {
    // 400 lines of 100 bytes in 1,000-byte chunks: about 40 chunks, 20 batches.
    const lines = Array.from(
      { length: 400 },
      (_, i) => `line-${i + 1}-${'x'.repeat(89 - String(i + 1).length)}`,
    );
    const input = Readable.from([Buffer.from(`${lines.join('\n')}\n`)]);
    const s = startSplit(input, {
      dir,
      maxLineBytes: 200,
      chunkBytes: 1000,
      batchChunks: 2,
      aheadBatches: 1,
    });
    const batches = s.batches[Symbol.asyncIterator]();
    const first = await batches.next();
    if (first.done) throw new Error('no batch');
    await new Promise((r) => setTimeout(r, 50));
    // Held back: released once 8 KiB were read (the binary check), then at most one batch ahead.
    expect(s.result.chunks.length).toBeLessThan(20);
    let numbered = first.value.reduce((n, c) => n + c.lines, 0);
    for (;;) {
      const next = await batches.next();
      if (next.done) break;
      expect(next.value[0]!.firstLine).toBe(numbered + 1);
      numbered += next.value.reduce((n, c) => n + c.lines, 0);
    }
    expect(numbered).toBe(400);
    expect((await s.done).totalLines).toBe(400);
    expect(s.result.chunks.length).toBeGreaterThan(35);
  });

  it('stops reading when the consumer stops taking batches, whether or not it was waiting', async () => {
    for (const aheadBatches of [1, 1000]) {
      let read = 0;
      const input = Readable.from(
        (async function* () {
          for (let i = 0; i < 10_000; i++) {
            read++;
            if (i % 100 === 0) await new Promise((r) => setTimeout(r, 1));
            yield Buffer.from(`line-${i}\n`);
          }
        })(),
      );
      const s = startSplit(input, { dir, maxLineBytes: 100, chunkBytes: 20, batchChunks: 2, aheadBatches });
      const batches = s.batches[Symbol.asyncIterator]();
      await batches.next();
      await batches.return?.(undefined);
      await expect(s.done).rejects.toThrow('the consumer stopped taking batches');
      expect(input.destroyed).toBe(true);
      const after = read;
      await new Promise((r) => setTimeout(r, 20));
      expect(read).toBe(after);
      expect(read).toBeLessThan(10_000);
    }
  });

  it('hands out the first batch with the complete sample', async () => {
    const lines = Array.from({ length: 300 }, (_, i) => `line-${i + 1}`);
    const s = startSplit(Readable.from([Buffer.from(`${lines.join('\n')}\n`)]), {
      dir,
      maxLineBytes: 100,
      chunkBytes: 20,
      batchChunks: 1,
    });
    const first = await s.batches[Symbol.asyncIterator]().next();
    expect(first.done).toBe(false);
    expect(s.result.sample).toHaveLength(64);
  });

  it('an input error ends the batches at once, queued or not', async () => {
    const input = Readable.from(
      (async function* () {
        for (let i = 0; i < 200; i++) yield Buffer.from(`line-${i}\n`);
        throw new Error('incorrect data check');
      })(),
    );
    const s = startSplit(input, { dir, maxLineBytes: 100, chunkBytes: 20, batchChunks: 1 });
    await expect(s.done).rejects.toThrow('incorrect data check');
    await expect(s.batches[Symbol.asyncIterator]().next()).rejects.toThrow('incorrect data check');
  });

  it('refuses a queue that could never hand anything out', async () => {
    const s = startSplit(Readable.from([Buffer.from('a\n')]), { dir, maxLineBytes: 100, aheadBatches: 0 });
    await expect(s.done).rejects.toThrow(RangeError);
  });
});
