/** Child process for the memory run: one ETL (or ceiling) of one file, then its peak RSS. */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { ceilingFile, etlFile } from './etl-local.js';

const [mode, path] = process.argv.slice(2);
const tmp = await mkdtemp(join(tmpdir(), 'bench-child-'));
const db = await DuckDBInstance.create(':memory:', {
  temp_directory: join(tmp, 'duckdb'),
  memory_limit: process.env.DUCKDB_MEMORY_LIMIT ?? '256MB',
  threads: '2',
});
const started = performance.now();
if (mode === 'etl') await etlFile(db, path!, tmp);
else await ceilingFile(db, path!, 'jsonl', tmp);
process.stdout.write(
  `${JSON.stringify({ seconds: (performance.now() - started) / 1000, maxRssMB: process.resourceUsage().maxRSS / 1024 })}\n`,
);
