import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes a data folder for this process alone (`<dir>/LOCK` holds its pid), before anything in it is
 * touched: a second emulator started on the same folder would otherwise sweep bodies or release
 * messages that the running one has just committed. A lock left by a process that is gone (killed)
 * is taken over. Returns the release function.
 */
export function lockDataDir(dir: string, what: string): () => void {
  const path = join(dir, 'LOCK');
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
      if (Number.isInteger(pid) && alive(pid)) {
        throw new Error(
          `${dir} is in use by process ${pid} (another ${what}?): stop it, or set another PIPELINE_DATA`,
        );
      }
      rmSync(path, { force: true });
      continue;
    }
    writeSync(fd, String(process.pid));
    closeSync(fd);
    return () => rmSync(path, { force: true });
  }
  throw new Error(`${dir}: could not take ${path}`);
}
