import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command } from 'commander';

/**
 * `telemetry-pipeline`: the local runtime and tools. Only commander is imported statically: the
 * functions read their configuration from the environment once, at import, so each command sets the
 * environment first and then loads what it needs.
 */
const program = new Command()
  .name('telemetry-pipeline')
  .description('Factory logs and telemetry → Parquet lake → enriched DuckDB warehouse')
  .option('--config <path>', 'config folder or factories.yaml (default: ./config; env PIPELINE_CONFIG)')
  .hook('preAction', (cmd) => {
    const { config } = cmd.opts<{ config?: string }>();
    if (config) process.env.PIPELINE_CONFIG = resolve(config);
  });

program
  .command('dev')
  .description(
    'start the local stack: embedded S3 + SQS (or S3_ENDPOINT / SQS_ENDPOINT), the functions, the HTTP API',
  )
  .option('--no-demo', 'do not seed the demo factory')
  .action(async (opts: { demo: boolean }) => {
    const { runDev } = await import('./dev.js');
    await runDev({ demo: opts.demo });
  });

program
  .command('invoke')
  .description('run one function once with an event file (see events/), in this process')
  .argument('<function>', 'function name, e.g. etl')
  .argument('<event>', 'path to an event JSON file')
  .action(async (fn: string, eventPath: string) => {
    const event = JSON.parse(await readFile(eventPath, 'utf8')) as unknown;
    const { invokeOnce } = await import('./dev.js');
    const result = await invokeOnce(fn, event);
    process.stdout.write(`${JSON.stringify(result ?? null, null, 2)}\n`);
  });

program
  .command('fetch')
  .description('fetch now from every enabled source of a factory (SFTP, FTP, HTTP, S3) into the raw bucket')
  .argument('<factory>', 'factory id from factories.yaml')
  .action(async (factory: string) => {
    const { runFetch } = await import('./fetch-cli.js');
    const failures = await runFetch(factory, (line) => process.stdout.write(`${line}\n`));
    if (failures > 0) process.exitCode = 1;
  });

program
  .command('query')
  .description('run SQL against read-only copies of the current warehouse files')
  .argument('<sql>', 'one SQL statement, e.g. "select count(*) from readings"')
  .option('--json', 'print a JSON array of row objects')
  .option('--csv', 'print CSV with a header row')
  .action(async (sql: string, opts: { json?: boolean; csv?: boolean }) => {
    const { runQuery } = await import('./query.js');
    process.stdout.write(await runQuery(sql, opts.json ? 'json' : opts.csv ? 'csv' : 'table'));
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`telemetry-pipeline: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
