import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests bind fixed loopback ports per file; run files one at a time on 2 cores.
    fileParallelism: false,
    pool: 'forks',
    // node:sqlite (the embedded S3 and SQS) is flagged experimental in Node 22: one warning per worker.
    poolOptions: { forks: { execArgv: ['--disable-warning=ExperimentalWarning'] } },
  },
});
