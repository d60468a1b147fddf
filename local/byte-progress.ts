import cliProgress from 'cli-progress';
import { formatBytes } from './cli-format.js';

/**
 * A transfer's progress for the terminal: one bar (bytes done / total, rate, ETA, what is moving) on
 * stderr when it is a TTY, lines printed above it; without a TTY only the lines, so logs and scripts
 * see no control characters.
 */
export interface ByteProgress {
  /** Prints a line (above the bar while one is shown). */
  log(line: string): void;
  /** Shows the bar for a transfer of `total` bytes (unknown: 0), starting at 0. */
  start(total: number, label: string): void;
  /** Bytes done so far (and a new total, when it was unknown; a new label). */
  update(bytes: number, change?: { total?: number; label?: string }): void;
  /** Removes the bar. */
  stop(): void;
}

export function byteProgress(opts: {
  write: (line: string) => void;
  /** Show a bar (default: stderr is a TTY). */
  bar?: boolean;
}): ByteProgress {
  const stream = process.stderr;
  const tty = opts.bar ?? Boolean(stream.isTTY);
  if (!tty) {
    return { log: opts.write, start() {}, update() {}, stop() {} };
  }
  const bars = new cliProgress.MultiBar(
    {
      stream,
      format: ' {bar} {percentage}% | {done} / {size} | {speed} | ETA {eta_formatted} | {label}',
      barsize: 28,
      hideCursor: true,
      clearOnComplete: true,
      stopOnComplete: false,
      etaBuffer: 50,
      fps: 8,
      gracefulExit: true,
    },
    cliProgress.Presets.shades_classic,
  );
  // Lines go where the caller writes them; above the bar only when that is the same terminal.
  const interleave = Boolean(process.stdout.isTTY);
  let bar: cliProgress.SingleBar | undefined;
  let started = 0;
  let total = 0;
  const payload = (bytes: number, label?: string) => {
    const seconds = (Date.now() - started) / 1000;
    return {
      done: formatBytes(bytes),
      size: total > 0 ? formatBytes(total) : '?',
      speed: seconds > 0.2 ? `${formatBytes(bytes / seconds)}/s` : '…',
      ...(label !== undefined ? { label } : {}),
    };
  };
  return {
    log(line) {
      if (bar && interleave) bars.log(`${line}\n`);
      else opts.write(line);
    },
    start(size, label) {
      total = size;
      started = Date.now();
      if (bar) bars.remove(bar);
      bar = bars.create(Math.max(size, 1), 0, payload(0, label));
    },
    update(bytes, change = {}) {
      if (!bar) return;
      const size = change.total;
      if (size !== undefined && size !== total) {
        total = size;
        bar.setTotal(Math.max(size, 1));
      }
      if (total === 0) bar.setTotal(Math.max(bytes, 1));
      bar.update(bytes, payload(bytes, change.label));
    },
    stop() {
      if (!bar) return;
      bars.remove(bar);
      bar = undefined;
      bars.stop();
    },
  };
}
