import { randomUUID } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, openSync } from 'node:fs';
import { mkdir, readdir, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { logger } from '../../functions/core/logger.js';
import type { ByteRange } from './range.js';

/**
 * Object and part bodies as files with generated names: `incoming/<uuid>` while being received,
 * `bodies/<uuid>` once complete. A key never becomes part of a path, so no key can reach outside the
 * data folder, and two keys differing only in `.` or `//` are two files. Bodies are immutable; a new
 * version is a new file, and the index decides which file an object is.
 *
 * Process crash, not power loss, is what this protects against: a rename is atomic for other processes
 * and survives the writer's death, so nothing is fsynced (a 1 GB upload stays as fast as the disk).
 */
export class BodyStore {
  private constructor(
    private readonly incoming: string,
    private readonly bodies: string,
  ) {}

  /** Opens the store under `dir`, discarding whatever a killed process left half-received. */
  static async open(dir: string): Promise<BodyStore> {
    const store = new BodyStore(join(dir, 'incoming'), join(dir, 'bodies'));
    await rm(store.incoming, { recursive: true, force: true });
    await mkdir(store.incoming, { recursive: true });
    await mkdir(store.bodies, { recursive: true });
    return store;
  }

  /**
   * Removes the bodies the index does not reference: written by a process killed between the rename
   * and the commit, or replaced by one killed between the commit and the unlink. Returns how many.
   */
  async sweep(referenced: ReadonlySet<string>): Promise<number> {
    const orphans = (await readdir(this.bodies)).filter((name) => !referenced.has(name));
    await this.remove(orphans);
    return orphans.length;
  }

  /**
   * Streams `streams` (a source and its transforms) into a new incoming file and returns its name.
   * On any failure, a client gone mid-body included, the file is removed before the error propagates.
   */
  async receive(streams: readonly NodeJS.ReadableStream[], signal: AbortSignal): Promise<string> {
    const name = randomUUID();
    const path = join(this.incoming, name);
    try {
      await pipeline([...streams, createWriteStream(path, { flags: 'wx' })], { signal });
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
    return name;
  }

  /** Moves a received file among the bodies, under the same name. */
  async install(name: string): Promise<void> {
    await rename(join(this.incoming, name), join(this.bodies, name));
  }

  /** Removes a received file that will not be installed. */
  async discard(name: string): Promise<void> {
    await rm(join(this.incoming, name), { force: true });
  }

  /**
   * Removes bodies no longer referenced (always after the commit that dropped them). A failure is
   * only logged: the body is an orphan the next start sweeps.
   */
  async remove(names: Iterable<string>): Promise<void> {
    for (const name of names) {
      try {
        await unlink(join(this.bodies, name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
          logger.warn({ err, name }, 'S3 emulator: could not remove an unreferenced body');
        }
      }
    }
  }

  /**
   * Opens a body synchronously. Call it in the same tick as the index lookup that named the body: a
   * body is unlinked only after a commit, which runs on this thread too, so it cannot vanish in between;
   * once open, the descriptor keeps it readable even if it is replaced.
   */
  openSync(name: string): number {
    return openSync(join(this.bodies, name), 'r');
  }

  /** A stream of an opened body (or of a range of it); it closes the descriptor. */
  read(fd: number, range?: ByteRange): Readable {
    return createReadStream('', { fd, start: range?.start, end: range?.end });
  }

  /** Closes the descriptors still in `fds` and empties it, so a second call closes nothing twice. */
  private close(fds: number[]): void {
    for (const fd of fds.splice(0)) closeSync(fd);
  }

  /**
   * The bodies one after another, as one stream. They are all opened now (see {@link openSync}), and
   * every descriptor is closed however the stream ends.
   */
  concatenate(names: readonly string[]): Readable {
    const fds: number[] = [];
    try {
      for (const name of names) fds.push(this.openSync(name));
    } catch (err) {
      this.close(fds);
      throw err;
    }
    const read = (fd: number) => this.read(fd);
    const close = (rest: number[]) => this.close(rest);
    const stream = Readable.from(
      (async function* () {
        try {
          for (let fd = fds.shift(); fd !== undefined; fd = fds.shift()) yield* read(fd);
        } finally {
          close(fds);
        }
      })(),
    );
    // A stream destroyed before its first read never runs the generator's `finally`.
    stream.once('close', () => close(fds));
    return stream;
  }
}
