/**
 * Child process for the memory run: one ETL (or ceiling) of one file, then its peak RSS. DuckDB is
 * configured as the ETL configures itself in a Lambda of BENCH_FUNCTION_MB (default 512) MB.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [mode, path] = process.argv.slice(2);
const tmp = await mkdtemp(join(tmpdir(), 'bench-child-'));
process.env.PIPELINE_TMP = tmp;
process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE ??= process.env.BENCH_FUNCTION_MB ?? '512';
// Imported after the environment is set: the configuration is read once, at import.
const { openDuckDB } = await import('../functions/core/duckdb.js');
const { runtimeConfig } = await import('../functions/core/config.js');
const { ceilingFile, etlFile } = await import('./etl-local.js');
const db = await openDuckDB(':memory:', { threads: '2' });
const started = performance.now();
if (mode === 'etl') await etlFile(db, path!, tmp);
else await ceilingFile(db, path!, 'jsonl', tmp);
process.stdout.write(
  `${JSON.stringify({
    seconds: (performance.now() - started) / 1000,
    maxRssMB: process.resourceUsage().maxRSS / 1024,
    duckdbMemoryLimit: runtimeConfig.duckdbMemoryLimit,
  })}\n`,
);
