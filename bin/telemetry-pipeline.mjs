#!/usr/bin/env node
// Entry point for the `telemetry-pipeline` CLI: runs the TypeScript CLI through tsx so that a fresh
// clone works with `npm install` alone (no build step).
import { register } from 'tsx/esm/api';

register();
await import('../local/cli.ts');
