import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { waitFor } from './wait.js';

const ROOT = join(import.meta.dirname, '..', '..');
/** Variables that configure the stack or its AWS clients. */
const STACK_SETTINGS =
  /^(AWS_|S3_|SQS_|RUNTIME_|EMULATOR_|PIPELINE_|RECONCILE_|LOCAL_|POLL_|API_TOKEN$|WEBHOOK_TOKEN$|LOG_LEVEL$)/;

/** What `/health` answers: the parts, and the last reconciler run. */
interface Health {
  status: string;
  parts: Record<string, string>;
  reconciler?: { checked: { raw: number }; reemitted: Record<string, number> };
}

/**
 * The embedded stack as a user runs it — `telemetry-pipeline dev --no-demo` in a process of its own —
 * so a test can kill it with SIGKILL at any moment and start it again on the same data folder. Its
 * output goes to `stack.log` in the data folder.
 */
export class StackProcess {
  private child: ChildProcess | undefined;
  readonly s3: S3Client;
  readonly env: Record<string, string>;

  private constructor(
    readonly data: string,
    readonly ports: { s3: number; sqs: number; runtime: number },
    env: Record<string, string>,
  ) {
    this.env = {
      S3_PORT: String(ports.s3),
      SQS_PORT: String(ports.sqs),
      RUNTIME_PORT: String(ports.runtime),
      PIPELINE_DATA: data,
      LOG_LEVEL: 'warn',
      ...env,
    };
    this.s3 = new S3Client({
      endpoint: this.s3Endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: {
        accessKeyId: this.env.AWS_ACCESS_KEY_ID ?? 'minioadmin',
        secretAccessKey: this.env.AWS_SECRET_ACCESS_KEY ?? 'minioadmin',
      },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 1,
    });
  }

  static async create(
    ports: { s3: number; sqs: number; runtime: number },
    env: Record<string, string> = {},
  ): Promise<StackProcess> {
    return new StackProcess(await mkdtemp(join(tmpdir(), 'tp-proc-')), ports, env);
  }

  get s3Endpoint(): string {
    return `http://127.0.0.1:${this.ports.s3}`;
  }

  get runtimeUrl(): string {
    return `http://127.0.0.1:${this.ports.runtime}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the stack and waits until `/health` answers (ok or degraded: it is listening). */
  async start(timeoutMs = 60_000): Promise<void> {
    // Something already answering on the port would pass for this stack while it dies of EADDRINUSE.
    if (
      await fetch(`${this.runtimeUrl}/health`).then(
        () => true,
        () => false,
      )
    ) {
      throw new Error(`port ${this.ports.runtime} is taken: another stack (or a leftover one) is running`);
    }
    const log = createWriteStream(join(this.data, 'stack.log'), { flags: 'a' });
    // The stack's settings are this.env alone, whatever the shell running the tests has set.
    const parentEnv = Object.fromEntries(
      Object.entries(process.env).filter(([name]) => !STACK_SETTINGS.test(name)),
    );
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'telemetry-pipeline.mjs'), 'dev', '--no-demo'], {
      cwd: ROOT,
      env: { ...parentEnv, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    this.child = child;
    let exited: number | null | undefined;
    child.once('exit', (code) => {
      exited = code;
    });
    await waitFor(
      async () => {
        if (exited !== undefined)
          throw new Error(`the stack exited with ${exited}; see ${this.data}/stack.log`);
        const res = await fetch(`${this.runtimeUrl}/health`);
        return res.status === 200 || res.status === 503;
      },
      timeoutMs,
      'the stack to listen',
    );
  }

  async health(): Promise<Health> {
    return (await (await fetch(`${this.runtimeUrl}/health`)).json()) as Health;
  }

  /** SIGKILL: no handler runs, nothing is flushed or returned to a queue. */
  async kill9(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /** Sends a signal and waits for the process to exit: how long it took, and how it ended. */
  async signal(signal: NodeJS.Signals): Promise<{ ms: number; code: number | null }> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null)
      return { ms: 0, code: child?.exitCode ?? null };
    const started = Date.now();
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill(signal);
    const code = await exited;
    this.child = undefined;
    return { ms: Date.now() - started, code };
  }

  async stop(): Promise<void> {
    await this.kill9();
    this.s3.destroy();
  }
}
