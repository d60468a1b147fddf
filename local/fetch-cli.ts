import { exportFunctionEnv, localSettings } from './settings.js';

/**
 * `telemetry-pipeline fetch <factory>`: fetches every enabled source of a factory now, in this process,
 * against the configured endpoints (a running `npm start` by default), printing each file.
 */
export async function runFetch(factoryId: string, write: (line: string) => void): Promise<number> {
  exportFunctionEnv(localSettings(), {});
  const { runtimeConfig, secretValue } = await import('../functions/core/config.js');
  const { loadFactories } = await import('../functions/contracts/factories.js');
  const { fetchSource } = await import('../functions/fetch/fetch-source.js');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(runtimeConfig.tmpDir, { recursive: true });
  const factory = loadFactories(runtimeConfig.configPath).factories.get(factoryId);
  if (!factory) throw new Error(`no factory "${factoryId}" in ${runtimeConfig.configPath}`);
  const sources = factory.sources.filter((s) => s.enabled);
  if (sources.length === 0) throw new Error(`factory "${factoryId}" has no enabled sources`);
  let failures = 0;
  for (const source of sources) {
    write(`${factoryId}/${source.id} (${source.type})`);
    try {
      const result = await fetchSource(factory, source, {
        rawBucket: runtimeConfig.buckets.raw,
        stateBucket: runtimeConfig.buckets.lake,
        tmpDir: runtimeConfig.tmpDir,
        secret: secretValue,
        deadline: Number.POSITIVE_INFINITY,
        progress: (e) => {
          if (e.kind === 'listed') write(`  listed ${e.files} file(s), ${e.new} new`);
          else {
            const size = `${(e.bytes / 1024).toFixed(1)} KiB`;
            const where =
              e.outcome === 'unstable'
                ? 'still being written, left for the next run'
                : `s3://${runtimeConfig.buckets.raw}/${e.key}`;
            write(
              `  ${e.outcome === 'fetched' ? '↓' : e.outcome === 'duplicate' ? '=' : '…'} ${e.path}  ${size}  ${e.outcome}  ${where}`,
            );
          }
        },
      });
      write(
        `  done: ${result.fetched.length} fetched, ${result.duplicates} duplicate, ${result.unstable} left for later, ${result.alreadyFetched} already fetched`,
      );
    } catch (err) {
      failures++;
      write(`  failed: ${(err as Error).message}`);
    }
  }
  return failures;
}
