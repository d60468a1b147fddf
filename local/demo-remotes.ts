import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { joinLines, jsonlReadings, templatedLog } from './demo-data.js';
import { ensureDemoSecrets } from './demo-secrets.js';
import { startHttpFileServer } from './http-file-server.js';
import { startSftpServer } from './sftp-server.js';

/**
 * The demo factory's remote machines: an SFTP server (a line controller's outbox) and an HTTP
 * historian, on loopback ports, each with a day of files. `config/factories.yaml` points the demo
 * factory's sources at them; their secrets are exported by name, the way a real deployment passes
 * secrets (never in the config file): generated once, and kept in the data folder (owner-only, see
 * `demo-secrets.ts`) so that `telemetry-pipeline fetch demo` in another terminal finds them.
 */
export async function startDemoRemotes(dataDir: string, day = new Date()) {
  const secrets = await ensureDemoSecrets(dataDir);
  const start = new Date(Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate(), 4));
  const seed = start.getTime() / 86_400_000;
  const stamp = start.toISOString().slice(0, 10);
  // Files are an hour old: settled, not "still being written".
  const mtime = new Date(Date.now() - 3_600_000);

  const sftpDir = join(dataDir, 'demo-remotes', 'sftp');
  await mkdir(join(sftpDir, 'outbox'), { recursive: true });
  const sftpFile = join(sftpDir, 'outbox', `controller-press-02-${stamp}.log`);
  await writeFile(sftpFile, joinLines(templatedLog({ seed: seed + 10, lines: 150, start, stepMs: 120_000 })));
  await utimes(sftpFile, mtime, mtime);

  const httpDir = join(dataDir, 'demo-remotes', 'http');
  await mkdir(httpDir, { recursive: true });
  const httpFile = join(httpDir, `sensors-historian-${stamp}.jsonl`);
  await writeFile(httpFile, joinLines(jsonlReadings({ seed: seed + 11, lines: 600, start, stepMs: 30_000 })));
  await utimes(httpFile, mtime, mtime);

  const sftp = await startSftpServer({
    root: sftpDir,
    port: Number(process.env.DEMO_SFTP_PORT ?? 2222),
    user: 'demo',
    password: secrets.DEMO_SFTP_PASSWORD,
  });
  const http = await startHttpFileServer({
    root: httpDir,
    port: Number(process.env.DEMO_HTTP_PORT ?? 8081),
    token: secrets.DEMO_HTTP_TOKEN,
  });
  return {
    sftp,
    http,
    async close() {
      await Promise.all([sftp.close(), http.close()]);
    },
  };
}
