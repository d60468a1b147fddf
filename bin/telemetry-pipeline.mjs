#!/usr/bin/env node
// Entry point for the `telemetry-pipeline` CLI: runs the TypeScript CLI through tsx so that a fresh
// clone works with `npm install` alone (no build step).
import { register } from 'tsx/esm/api';

// The AWS SDK warns on every start that future releases need Node 22. Deployed functions run on
// nodejs22.x; locally Node 20 is supported, so the notice is noise in every command's output.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = (warning, ...rest) => {
  const type = typeof rest[0] === 'string' ? rest[0] : rest[0]?.type;
  if (type === 'NodeVersionSupportWarning' || String(warning).includes('NodeVersionSupportWarning')) return;
  emitWarning(warning, ...rest);
};

register();
await import('../local/cli.ts');
