import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

/**
 * The demo factory's source secrets (`config/factories.yaml` names them; `npm start` generates them for
 * the SFTP and HTTP remotes it runs). They are kept in the data folder, readable by their owner only,
 * so that a CLI command in another terminal — `npx telemetry-pipeline fetch demo` — finds them without
 * the user exporting anything. Only these names are ever read from the file: it cannot set any other
 * variable of the process.
 */
export const DEMO_SECRET_NAMES = ['DEMO_SFTP_PASSWORD', 'DEMO_HTTP_TOKEN'] as const;
type DemoSecretName = (typeof DEMO_SECRET_NAMES)[number];

export const DEMO_SECRETS_FILE = 'demo-secrets.json';

export function demoSecretsPath(dataDir: string): string {
  return join(dataDir, DEMO_SECRETS_FILE);
}

const fileSchema = z.record(z.string(), z.string().min(1));

/**
 * The secrets in the file; `{}` when there is none. A file others can read or that another user owns
 * is not used (as ssh refuses such a key): `warning` says why.
 */
export function readDemoSecrets(dataDir: string): {
  secrets: Partial<Record<DemoSecretName, string>>;
  warning?: string;
} {
  const path = demoSecretsPath(dataDir);
  let text: string;
  try {
    const st = statSync(path);
    if ((st.mode & 0o077) !== 0) {
      return {
        secrets: {},
        warning: `${path} is readable by others (mode ${(st.mode & 0o777).toString(8)}): not used; \`chmod 600\` it or delete it (the next \`npm start\` writes a new one)`,
      };
    }
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid) {
      return { secrets: {}, warning: `${path} belongs to another user (uid ${st.uid}): not used` };
    }
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { secrets: {} };
    return { secrets: {}, warning: `${path}: ${(err as Error).message}` };
  }
  let parsed: z.infer<typeof fileSchema>;
  try {
    parsed = fileSchema.parse(JSON.parse(text));
  } catch {
    return { secrets: {}, warning: `${path} is not a JSON object of secrets: not used` };
  }
  const secrets: Partial<Record<DemoSecretName, string>> = {};
  for (const name of DEMO_SECRET_NAMES) if (parsed[name]) secrets[name] = parsed[name];
  return { secrets };
}

/**
 * Puts the file's secrets into `env` where the variable is not set (an exported value wins), before
 * the functions are loaded (they read secrets from the environment locally). Returns a warning to show
 * when the file exists but is not used.
 */
export function loadDemoSecrets(dataDir: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const { secrets, warning } = readDemoSecrets(dataDir);
  for (const [name, value] of Object.entries(secrets)) env[name] ??= value;
  return warning;
}

/**
 * Writes the secrets file with mode 0600, atomically: a temporary file created with that mode (never
 * readable by others, whatever the umask), then renamed over the old one, so a reader sees the whole
 * old file or the whole new one.
 */
export async function writeDemoSecrets(
  dataDir: string,
  secrets: Record<DemoSecretName, string>,
): Promise<string> {
  await mkdir(dataDir, { recursive: true });
  const path = demoSecretsPath(dataDir);
  const tmp = `${path}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  try {
    const file = await open(tmp, 'wx', 0o600);
    try {
      await file.chmod(0o600);
      await file.writeFile(`${JSON.stringify(secrets, null, 2)}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return path;
}

/**
 * The demo's secrets for this run: the environment's, else the data folder's (so they stay the same
 * across restarts and a CLI in another terminal keeps working), else new random ones; set in
 * `process.env` and written back to the file when it did not hold them.
 */
export async function ensureDemoSecrets(dataDir: string): Promise<Record<DemoSecretName, string>> {
  const { secrets: stored } = readDemoSecrets(dataDir);
  const secrets = {} as Record<DemoSecretName, string>;
  for (const name of DEMO_SECRET_NAMES) {
    process.env[name] ||= stored[name] ?? randomBytes(12).toString('hex');
    secrets[name] = process.env[name]!;
  }
  if (DEMO_SECRET_NAMES.some((name) => stored[name] !== secrets[name])) {
    await writeDemoSecrets(dataDir, secrets);
  }
  return secrets;
}
