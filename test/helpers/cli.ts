import { spawn } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

/** Variables that would point a child at another stack, or hand it the demo's secrets. */
const INHERITED =
  /^(AWS_|S3_|SQS_|RUNTIME_|EMULATOR_|PIPELINE_|RECONCILE_|LOCAL_|POLL_|DEMO_|API_TOKEN$|LOG_LEVEL$)/;

/**
 * The real CLI (`bin/telemetry-pipeline.mjs`) in a process of its own, with `env` and none of this
 * process's variables that would point it at another stack.
 */
export function runCli(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 120_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'telemetry-pipeline.mjs'), ...args], {
      cwd: ROOT,
      env: {
        ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !INHERITED.test(name))),
        LOG_LEVEL: 'fatal',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `telemetry-pipeline ${args.join(' ')}: no exit after ${timeoutMs} ms\n${stdout}\n${stderr}`,
        ),
      );
    }, timeoutMs);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
