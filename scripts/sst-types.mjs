#!/usr/bin/env node
// Generates SST's platform types (.sst/platform) offline, once, so `tsc` can check sst.config.ts and
// stacks/ against SST's real component types. `sst install` needs no AWS credentials.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

if (!existsSync('.sst/platform/config.d.ts')) {
  execFileSync('npx', ['sst', 'install', '--stage', 'ci'], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, SST_SKIP_DEPENDENCY_CHECK: '1', SST_NO_BUN: '1', SST_TELEMETRY_DISABLED: '1' },
  });
}
