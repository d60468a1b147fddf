#!/usr/bin/env node
// Entry point for the `telemetry-pipeline` CLI: runs the TypeScript CLI through tsx so that a fresh
// clone works with `npm install` alone (no build step).
import { register } from 'tsx/esm/api';

// The project runs on the Node its functions run on in Lambda (nodejs22.x). npm scripts and npx put
// node_modules/.bin first on PATH, where the `node` package installs Node 22, whatever the system has.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 5)) {
  process.stderr.write(
    `telemetry-pipeline needs Node >= 22.5 (this is ${process.version}). Run it through npm (npm start, ` +
      'npx telemetry-pipeline …) so the Node 22 that `npm install` put in node_modules/.bin is used.\n',
  );
  process.exit(1);
}

// node:sqlite (the embedded S3 and SQS keep their state in it) is stable in use here but still flagged
// experimental in Node 22; its one-line warning on every start is noise for the CLI's users.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = (warning, ...rest) => {
  if (String(warning).includes('SQLite is an experimental feature')) return;
  emitWarning(warning, ...rest);
};

register();
await import('../local/cli.ts');
