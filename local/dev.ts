import { join } from 'node:path';
import { logger } from '../functions/core/logger.js';
import { type FunctionName, topology } from '../topology/topology.js';
import { shellWord } from './cli-format.js';
import { DEMO_FACTORY, seedDemo, waitForManifests } from './demo.js';
import { startDemoRemotes } from './demo-remotes.js';
import { demoSecretsPath, loadDemoSecrets } from './demo-secrets.js';
import { invokeFunction, loadFunctions } from './functions.js';
import { ensureQueues, localSqs } from './resources.js';
import { type RuntimeOptions, startRuntime } from './runtime.js';
import { DEFAULT_KEY, exportFunctionEnv, type LocalSettings, localSettings } from './settings.js';

/** How long SIGINT/SIGTERM may take to stop the stack before the process exits anyway. */
const STOP_TIMEOUT_MS = 10_000;

/**
 * What `dev` asks of the runtime: without the demo its remotes do not run, so the schedule leaves the
 * demo factory's sources out (they would fail into the fetch DLQ every 5 minutes).
 */
export function devRuntimeOptions(opts: { demo: boolean }): RuntimeOptions {
  return { unscheduledFactories: opts.demo ? [] : [DEMO_FACTORY] };
}

/**
 * The environment a CLI command in another terminal needs to reach this stack, as a command prefix:
 * only what differs from the defaults (`S3_PORT=19000 SQS_PORT=19324 `; empty on default settings).
 */
export function cliEnvPrefix(s: LocalSettings, env: NodeJS.ProcessEnv = process.env): string {
  const vars: [string, string][] = [];
  if (s.S3_ENDPOINT) vars.push(['S3_ENDPOINT', s.S3_ENDPOINT]);
  else if (s.S3_PORT !== 9000) vars.push(['S3_PORT', String(s.S3_PORT)]);
  if (s.SQS_ENDPOINT) vars.push(['SQS_ENDPOINT', s.SQS_ENDPOINT]);
  else if (s.SQS_PORT !== 9324) vars.push(['SQS_PORT', String(s.SQS_PORT)]);
  // The data folder holds the demo's secrets and the query cache.
  if (s.PIPELINE_DATA !== join(process.cwd(), '.data')) vars.push(['PIPELINE_DATA', s.PIPELINE_DATA]);
  if (env.PIPELINE_CONFIG) vars.push(['PIPELINE_CONFIG', env.PIPELINE_CONFIG]);
  if (s.AWS_REGION !== 'us-east-1') vars.push(['AWS_REGION', s.AWS_REGION]);
  // A key pair of one's own: named, never printed.
  if (s.AWS_ACCESS_KEY_ID !== DEFAULT_KEY || s.AWS_SECRET_ACCESS_KEY !== DEFAULT_KEY) {
    vars.push(
      ['AWS_ACCESS_KEY_ID', '"$AWS_ACCESS_KEY_ID"'],
      ['AWS_SECRET_ACCESS_KEY', '"$AWS_SECRET_ACCESS_KEY"'],
    );
  }
  return vars
    .map(([name, value]) => `${name}=${value.startsWith('"$') ? value : shellWord(value)} `)
    .join('');
}

/** `telemetry-pipeline dev`: the whole local stack until SIGINT/SIGTERM. */
export async function runDev(opts: { demo: boolean }): Promise<void> {
  const remotes = opts.demo ? await startDemoRemotes(localSettings().PIPELINE_DATA) : undefined;
  const runtime = await startRuntime(undefined, devRuntimeOptions(opts));
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    // Bounded whatever is running: a DuckDB query is not interrupted by closing ports. Its messages are
    // back in their queue by then (or come back at the next start), and every stage is idempotent.
    setTimeout(() => {
      logger.warn({ seconds: STOP_TIMEOUT_MS / 1000 }, 'still stopping; exiting now');
      process.exit(1);
    }, STOP_TIMEOUT_MS).unref();
    await runtime.stop();
    await remotes?.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));

  if (opts.demo) {
    const keys = await seedDemo(runtime.s3);
    keys.push(...(await fetchDemoSources(runtime)));
    const manifests = await waitForManifests(runtime.s3, keys);
    const lines: string[] = [
      '',
      `Demo factory "${DEMO_FACTORY}" (uploaded files, and files fetched from its SFTP ${remotes!.sftp.port} and HTTP ${remotes!.http.port} sources) processed:`,
    ];
    for (const m of manifests) {
      lines.push(
        `  s3://raw/${m.source.key}  ${m.format ?? m.status}: ${m.lines.loaded} lines loaded, ${m.lines.rejected} rejected → ${m.rows.readings} readings, ${m.rows.events} events`,
      );
    }
    if (manifests.length < keys.length)
      lines.push(`  (${keys.length - manifests.length} file(s) still processing)`);
    const loaded = await waitForWarehouse(keys);
    lines.push('', `Warehouse in s3://warehouse/: ${loaded} of ${keys.length} demo files fully loaded.`);
    lines.push(
      '',
      'Outputs (lake bucket):',
      '  s3://lake/normalized/<table>/factory=<factory>/month=<yyyy-mm>/<id>.parquet',
    );
    lines.push('  s3://lake/quarantine/rejects/factory=<factory>/<id>.parquet   rejected lines with reasons');
    lines.push('  s3://lake/manifests/factory=<factory>/<id>.json              per-file accounting');
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  process.stdout.write(banner(runtime.settings, runtime.url, opts.demo));
}

/** What `dev` prints once up: where everything is, and commands that work as printed from another terminal. */
export function banner(settings: LocalSettings, runtimeUrl: string, demo: boolean): string {
  const { s3Endpoint, sqsEndpoint } = settings;
  const day = new Date().toISOString().slice(0, 10).replace(/-/g, '/');
  const cli = `${cliEnvPrefix(settings)}npx telemetry-pipeline`;
  const ownKeys =
    settings.AWS_ACCESS_KEY_ID !== DEFAULT_KEY || settings.AWS_SECRET_ACCESS_KEY !== DEFAULT_KEY;
  const aws = `${ownKeys ? '' : `AWS_ACCESS_KEY_ID=${DEFAULT_KEY} AWS_SECRET_ACCESS_KEY=${DEFAULT_KEY} `}aws --endpoint-url ${s3Endpoint} --region ${settings.AWS_REGION}`;
  return [
    '',
    `Local stack up: S3 ${s3Endpoint}  SQS ${sqsEndpoint}  runtime ${runtimeUrl} (/health, /metrics)`,
    `Dashboard: ${runtimeUrl}/   (read API: ${runtimeUrl}/api/overview, …)`,
    'Upload a log and follow it to the warehouse:',
    `  ${cli} upload my.log --factory ${DEMO_FACTORY} --wait`,
    `  ${aws} s3 cp my.log s3://raw/${DEMO_FACTORY}/${day}/my.log   # or any S3 client${ownKeys ? ' (with your AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)' : ''}`,
    'Where every file is (per stage, queues, DLQs, the reconciler, the warehouse):',
    `  ${cli} status`,
    'List the lake:',
    `  ${aws} s3 ls --recursive s3://lake/`,
    'Query the warehouse:',
    `  ${cli} query "select device, count(*) readings, count(*) filter (where is_anomaly) anomalies from readings group by all"`,
    `  ${cli} query "select * from pipeline_files" --json`,
    ...(demo
      ? [
          `Fetch the demo's SFTP and HTTP sources now (secrets in ${demoSecretsPath(settings.PIPELINE_DATA)}, owner-only):`,
          `  ${cli} fetch ${DEMO_FACTORY}`,
        ]
      : []),
    'Press Ctrl+C to stop.',
    '',
  ].join('\n');
}

/** Runs the fetch function once for each demo source (as the schedule would) and returns the raw keys. */
async function fetchDemoSources(runtime: Awaited<ReturnType<typeof startRuntime>>): Promise<string[]> {
  const { loadFetchState } = await import('../functions/fetch/fetch-state.js');
  const { fetchStateKey } = await import('../functions/contracts/keys.js');
  const keys: string[] = [];
  for (const source of ['line3-controller', 'historian']) {
    const event = {
      Records: [{ messageId: `demo-${source}`, body: JSON.stringify({ factory: DEMO_FACTORY, source }) }],
    };
    const result = (await runtime.invoke('fetch', event)) as { batchItemFailures?: unknown[] };
    if (result.batchItemFailures?.length) {
      process.stdout.write(`  fetch ${DEMO_FACTORY}/${source} failed; see the log above\n`);
      continue;
    }
    const { state } = await loadFetchState('lake', fetchStateKey(DEMO_FACTORY, source));
    keys.push(...new Set(Object.values(state.files).map((f) => f.key)));
  }
  return keys;
}

/** Waits (up to a minute) until the warehouse reports every key complete; returns how many are. */
async function waitForWarehouse(keys: string[], timeoutMs = 60_000): Promise<number> {
  const { queryLocal } = await import('./query.js');
  const deadline = Date.now() + timeoutMs;
  let complete = 0;
  while (Date.now() < deadline) {
    try {
      const { rows } = await queryLocal('SELECT source_key FROM pipeline_files WHERE complete');
      const done = new Set(rows.map((r) => r.source_key));
      complete = keys.filter((k) => done.has(k)).length;
      if (complete === keys.length) break;
    } catch {
      // no warehouse file yet
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  return complete;
}

/**
 * `telemetry-pipeline invoke <fn> <event>`: one invocation in this process against the configured
 * endpoints (a running `dev` stack by default), like `sam local invoke`.
 */
export async function invokeOnce(fn: string, event: unknown): Promise<unknown> {
  if (!(fn in topology.functions))
    throw new Error(`unknown function "${fn}"; known: ${Object.keys(topology.functions).join(', ')}`);
  const settings = localSettings();
  // `invoke fetch …` needs the demo's secrets too (see demo-secrets.ts).
  const warning = loadDemoSecrets(settings.PIPELINE_DATA);
  if (warning) process.stderr.write(`warning: ${warning}\n`);
  const sqs = localSqs(settings);
  const queueUrls = await ensureQueues(sqs).catch((err: Error) => {
    throw new Error(
      `cannot reach SQS at ${settings.sqsEndpoint} (is \`npm start\` running?): ${err.message}`,
    );
  });
  exportFunctionEnv(settings, queueUrls);
  const functions = await loadFunctions();
  return invokeFunction(fn as FunctionName, functions.get(fn as FunctionName)!, event);
}
