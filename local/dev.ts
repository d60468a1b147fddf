import { logger } from '../functions/core/logger.js';
import { type FunctionName, topology } from '../topology/topology.js';
import { DEMO_FACTORY, seedDemo, waitForManifests } from './demo.js';
import { startDemoRemotes } from './demo-remotes.js';
import { invokeFunction, loadFunctions } from './functions.js';
import { ensureQueues, localSqs } from './resources.js';
import { startRuntime } from './runtime.js';
import { exportFunctionEnv, localSettings } from './settings.js';

/** How long SIGINT/SIGTERM may take to stop the stack before the process exits anyway. */
const STOP_TIMEOUT_MS = 10_000;

/** `telemetry-pipeline dev`: the whole local stack until SIGINT/SIGTERM. */
export async function runDev(opts: { demo: boolean }): Promise<void> {
  const remotes = opts.demo ? await startDemoRemotes(localSettings().PIPELINE_DATA) : undefined;
  const runtime = await startRuntime();
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

  const { s3Endpoint } = runtime.settings;
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
      '  s3://lake/normalized/<table>/factory=<factory>/date=<yyyy-mm-dd>/<id>.parquet',
    );
    lines.push('  s3://lake/quarantine/rejects/factory=<factory>/<id>.parquet   rejected lines with reasons');
    lines.push('  s3://lake/manifests/factory=<factory>/<id>.json              per-file accounting');
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  const day = new Date().toISOString().slice(0, 10).replace(/-/g, '/');
  process.stdout.write(
    [
      '',
      `Local stack up: S3 ${s3Endpoint}  SQS ${runtime.settings.sqsEndpoint}  runtime ${runtime.url} (/health, /metrics)`,
      `Dashboard: ${runtime.url}/   (read API: ${runtime.url}/api/overview, …)`,
      'Upload a log (credentials minioadmin/minioadmin):',
      `  AWS_ACCESS_KEY_ID=minioadmin AWS_SECRET_ACCESS_KEY=minioadmin aws --endpoint-url ${s3Endpoint} --region us-east-1 s3 cp my.log s3://raw/${DEMO_FACTORY}/${day}/my.log`,
      'List the lake:',
      `  AWS_ACCESS_KEY_ID=minioadmin AWS_SECRET_ACCESS_KEY=minioadmin aws --endpoint-url ${s3Endpoint} --region us-east-1 s3 ls --recursive s3://lake/`,
      'Query the warehouse:',
      '  npx telemetry-pipeline query "select device, count(*) readings, count(*) filter (where is_anomaly) anomalies from readings group by all"',
      '  npx telemetry-pipeline query "select * from pipeline_files" --json',
      'Press Ctrl+C to stop.',
      '',
    ].join('\n'),
  );
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
