import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';

/**
 * `telemetry-pipeline`: the local runtime and tools. Only commander is imported statically: the
 * functions read their configuration from the environment once, at import, so each command sets the
 * environment first and then loads what it needs.
 */
const program = new Command()
  .name('telemetry-pipeline')
  .description('Factory logs and telemetry → Parquet lake → enriched DuckDB warehouse')
  .option('--config <path>', 'config folder or factories.yaml (default: ./config; env PIPELINE_CONFIG)')
  .option(
    '--stage <name>',
    'act on a deployed stage (names from .sst/outputs.json, credentials from the AWS chain) instead of the local stack',
  )
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
  .action(async (factory: string, _opts: unknown, cmd: Command) => {
    const { targetOf } = await import('./target.js');
    const target = await targetOf(cmd);
    const { runFetch } = await import('./fetch-cli.js');
    const failures = await runFetch(factory, target, { write: (line) => process.stdout.write(`${line}\n`) });
    if (failures > 0) process.exitCode = 1;
  });

program
  .command('status')
  .description(
    'where the files are: per stage done / failed / in flight, queue and DLQ depths, the oldest unprocessed raw object, the reconciler, the warehouse',
  )
  .option('--factory <id>', 'only this factory')
  .option('--json', 'print the report as JSON')
  .action(async (opts: { factory?: string; json?: boolean }, cmd: Command) => {
    const { targetOf } = await import('./target.js');
    const target = await targetOf(cmd);
    const { runStatus } = await import('./status.js');
    process.stdout.write(await runStatus(target, opts));
  });

program
  .command('upload')
  .description('upload files or folders to the raw bucket as <factory>/<yyyy>/<mm>/<dd>/<name>')
  .argument('<paths...>', 'files, or folders (their files keep their path below the day)')
  .requiredOption('--factory <id>', 'factory id from factories.yaml (the first segment of the keys)')
  .option('--date <yyyy-mm-dd>', "the day in the keys (default: today's UTC date)")
  .option('--new-factory', 'allow a factory that is not in the config (formats detected, times in UTC)')
  .option('--wait', 'follow each file to the warehouse; exit 1 if one is quarantined or not complete in time')
  .option('--timeout <seconds>', 'how long --wait waits', '300')
  .action(
    async (
      paths: string[],
      opts: { factory: string; date?: string; newFactory?: boolean; wait?: boolean; timeout: string },
      cmd: Command,
    ) => {
      const timeoutSeconds = Number(opts.timeout);
      if (!(timeoutSeconds > 0)) throw new Error(`--timeout ${opts.timeout}: a number of seconds`);
      const { targetOf } = await import('./target.js');
      const target = await targetOf(cmd);
      const { runUpload } = await import('./upload.js');
      const result = await runUpload(paths, target, {
        ...opts,
        timeoutSeconds,
        write: (line) => process.stdout.write(`${line}\n`),
      });
      process.exitCode = result.exitCode;
    },
  );

program
  .command('query')
  .description('run SQL against read-only copies of the current warehouse files')
  .argument('<sql>', 'one SQL statement, e.g. "select count(*) from readings"')
  .option(
    '--json',
    'print a JSON array of row objects (numbers as numbers; BIGINT/HUGEINT beyond ±(2^53 − 1) and DECIMAL of over 15 significant digits as strings)',
  )
  .option(
    '--csv',
    'print CSV with a header row (values as stored: only the table escapes control characters)',
  )
  .option('--strict', 'exit 1 when the result was cut at 10,000 rows (the warning is printed either way)')
  .addOption(
    new Option(
      '--engine <engine>',
      'warehouse: the DuckDB warehouse (recent, enriched, fast); lake: every Parquet object in the lake, under the table names Athena has deployed (readings, events, normalized_readings, normalized_events, rejects, manifests)',
    )
      .choices(['warehouse', 'lake'])
      .default('warehouse'),
  )
  .addHelpText(
    'after',
    '\nAt most 10,000 rows are printed (more: a warning on stderr); `export` writes all of them to a file.\nDeployed, the lake is also in Athena: see docs/deploy.md, "Query the whole lake with Athena".',
  )
  .action(
    async (
      sql: string,
      opts: { json?: boolean; csv?: boolean; strict?: boolean; engine: 'warehouse' | 'lake' },
      cmd: Command,
    ) => {
      const { targetOf } = await import('./target.js');
      const target = await targetOf(cmd);
      const { runQuery, TRUNCATED_WARNING } = await import('./query.js');
      const { text, truncated } = await runQuery(
        sql,
        opts.json ? 'json' : opts.csv ? 'csv' : 'table',
        target,
        opts.engine,
      );
      process.stdout.write(text);
      if (truncated) {
        process.stderr.write(TRUNCATED_WARNING);
        if (opts.strict) process.exitCode = 1;
      }
    },
  );

program
  .command('export')
  .description('write every row of a query to a Parquet, CSV or JSONL file, with the query limits')
  .argument('<sql>', 'one SELECT, e.g. "select * from readings where factory = \'demo\'"')
  .requiredOption(
    '-o, --output <file>',
    'the file: .parquet, .csv or .jsonl (.csv.gz, .jsonl.zst: compressed)',
  )
  .option('--format <format>', 'parquet, csv or jsonl (default: from the file name)')
  .option('--timeout <seconds>', 'stop the export after this long', '600')
  .option('--force', 'replace the file if it exists')
  .action(
    async (
      sql: string,
      opts: { output: string; format?: string; timeout: string; force?: boolean },
      cmd: Command,
    ) => {
      const timeoutSeconds = Number(opts.timeout);
      if (!(timeoutSeconds > 0 && timeoutSeconds <= 86_400)) {
        throw new Error(`--timeout ${opts.timeout}: a number of seconds, at most 86400`);
      }
      const { targetOf } = await import('./target.js');
      const target = await targetOf(cmd);
      const { runExport, exportSummaryLine } = await import('./query.js');
      const summary = await runExport(sql, { ...opts, timeoutSeconds, target });
      process.stderr.write(exportSummaryLine(summary));
    },
  );

const packageJson = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};
program.version(
  `telemetry-pipeline ${packageJson.version} (Node ${process.version})`,
  '-V, --version',
  "print the version (and Node's)",
);

const dlq = program
  .command('dlq')
  .description('dead-letter queues: what is in them and why (the recorded error), and moving messages back');
const writeOut = (text: string) => process.stdout.write(text);
dlq
  .command('list')
  .description('per queue (fetch, etl, enrich, warehouse): its dead letters, what each was about, its error')
  .argument('[queue]', 'one queue only: fetch, etl, enrich or warehouse')
  .option('--json', 'print JSON')
  .option('--limit <n>', 'list at most this many messages per queue', (v) => Number.parseInt(v, 10), 100)
  .action(async (queue: string | undefined, opts: { json?: boolean; limit: number }, cmd: Command) => {
    const { targetOf } = await import('./target.js');
    const { runDlqList } = await import('./dlq.js');
    process.exitCode = await runDlqList(await targetOf(cmd), queue, opts, writeOut);
  });
dlq
  .command('show')
  .description('one dead letter: its body, attributes and failure record')
  .argument('<queue>', 'fetch, etl, enrich or warehouse')
  .argument('<id>', 'the message id (from `dlq list`)')
  .option('--json', 'print JSON')
  .action(async (queue: string, id: string, opts: { json?: boolean }, cmd: Command) => {
    const { targetOf } = await import('./target.js');
    const { runDlqShow } = await import('./dlq.js');
    process.exitCode = await runDlqShow(await targetOf(cmd), queue, id, opts, writeOut);
  });
dlq
  .command('redrive')
  .description('move dead letters back to their queue: by id, or all of them')
  .argument('<queue>', 'fetch, etl, enrich or warehouse')
  .option('--id <id...>', 'the message ids to move (from `dlq list`)')
  .option('--all', 'every message in the DLQ (an SQS message move task where the SQS has them)')
  .option('--json', 'print JSON')
  .action(async (queue: string, opts: { id?: string[]; all?: boolean; json?: boolean }, cmd: Command) => {
    const { targetOf } = await import('./target.js');
    const { runDlqRedrive } = await import('./dlq.js');
    process.exitCode = await runDlqRedrive(await targetOf(cmd), queue, opts, writeOut);
  });

program
  .command('reprocess')
  .description(
    "send a factory's raw files through the pipeline again (after a rule fix) or for the first time (backfill)",
  )
  .requiredOption('--factory <id>', 'the factory (first segment of the raw keys)')
  .option('--from <date>', 'first day, yyyy-mm-dd (the date in the key)')
  .option('--to <date>', 'last day, yyyy-mm-dd, inclusive')
  .option(
    '--key <glob>',
    'only keys matching this glob ("plant/2024/03/*/press-*"; without a / the file name: "*.csv")',
  )
  .option(
    '--step <step>',
    'where to start: etl (parse again), enrich (registry and catalogue again), warehouse (load again)',
    'etl',
  )
  .option('--dry-run', 'list what would be sent; send nothing')
  .option('--wait', 'follow the files until the warehouse holds what this run made; print their counts')
  .option('--timeout <seconds>', 'how long --wait waits (default 900)')
  .action(
    async (
      opts: {
        factory: string;
        from?: string;
        to?: string;
        key?: string;
        step: string;
        dryRun?: boolean;
        wait?: boolean;
        timeout?: string;
      },
      cmd: Command,
    ) => {
      const { targetOf } = await import('./target.js');
      const { runReprocess } = await import('./reprocess.js');
      process.exitCode = await runReprocess(await targetOf(cmd), opts, (text) => process.stdout.write(text));
    },
  );

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`telemetry-pipeline: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
