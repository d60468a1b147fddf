#!/usr/bin/env node
// Builds the dashboard page (dashboard/src → dashboard/dist) with esbuild: `index.html`, `app.js` and
// `app.css`, fixed names, because the api function serves `GET /` from dist/index.html and
// `GET /assets/<name>` from dist/<name>. Everything is bundled (Preact, uPlot and its CSS): the page
// must work offline behind a plant firewall, so nothing comes from a CDN.
//
// Runs on `npm install`/`npm ci` (prepare) and before `npm start` (prestart); tests can import
// `buildDashboard` and await it (a build takes well under a second).
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DASHBOARD_SRC = join(root, 'dashboard');
export const DASHBOARD_DIST = join(root, 'dashboard', 'dist');

/**
 * @param {{ outdir?: string, minify?: boolean, sourcemap?: boolean }} [options]
 * @returns {Promise<{ outdir: string, files: Record<string, number> }>} the files written and their sizes
 */
export async function buildDashboard({ outdir = DASHBOARD_DIST, minify = true, sourcemap = false } = {}) {
  await rm(outdir, { recursive: true, force: true });
  await mkdir(outdir, { recursive: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: { app: join(DASHBOARD_SRC, 'src', 'main.tsx') },
    outdir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify,
    sourcemap: sourcemap ? 'linked' : false,
    legalComments: 'none',
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'warning',
    metafile: true,
  });
  const names = Object.keys(result.metafile.outputs).map((p) => p.slice(p.lastIndexOf('/') + 1));
  for (const expected of ['app.js', 'app.css']) {
    if (!names.includes(expected)) throw new Error(`dashboard build: ${expected} was not produced`);
  }

  // The asset names are fixed; a content hash in the query string makes a browser fetch them again
  // after a deploy (the server routes on the path and ignores the query).
  const version = async (name) =>
    createHash('sha256')
      .update(await readFile(join(outdir, name)))
      .digest('hex')
      .slice(0, 12);
  const template = await readFile(join(DASHBOARD_SRC, 'index.html'), 'utf8');
  const html = template
    .replace('/assets/app.css', `/assets/app.css?v=${await version('app.css')}`)
    .replace('/assets/app.js', `/assets/app.js?v=${await version('app.js')}`);
  await writeFile(join(outdir, 'index.html'), html);

  const files = {};
  for (const name of ['index.html', ...names.sort()]) {
    files[name] = (await readFile(join(outdir, name))).length;
  }
  return { outdir, files };
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const started = Date.now();
  const { outdir, files } = await buildDashboard({ sourcemap: process.argv.includes('--sourcemap') });
  const sizes = Object.entries(files)
    .map(([name, bytes]) => `${name} ${(bytes / 1024).toFixed(1)} KiB`)
    .join(', ');
  process.stdout.write(
    `dashboard: ${sizes} → ${outdir.replace(`${root}/`, '')} (${Date.now() - started} ms)\n`,
  );
}
