import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedDemo } from '../../local/demo.js';
import { buildDashboard } from '../../scripts/build-dashboard.mjs';
import { startTestStack, type TestStack } from '../helpers/stack.js';

/**
 * The dashboard in a real browser (Debian's Chromium driven by playwright-core) against the embedded
 * stack loaded with the demo factory: every view draws the data the API has, filters change what is
 * shown, and the page asks for the token when one is configured. Screenshots go to test/artifacts/.
 */
const ARTIFACTS = join(import.meta.dirname, '..', 'artifacts');
const TOKEN = 'browser-test-token-0123';
const DAY = new Date('2025-06-02T00:00:00Z');

let stack: TestStack;
let browser: Browser;
let page: Page;

async function shot(name: string) {
  await page.screenshot({ path: join(ARTIFACTS, `dashboard-${name}.png`) });
}
/** A number from a `data-*` attribute of the element with this test id. */
async function data(testId: string, attr: string): Promise<number> {
  const el = page.getByTestId(testId).first();
  await el.waitFor();
  return Number(await el.getAttribute(`data-${attr}`));
}

beforeAll(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  await buildDashboard();
  stack = await startTestStack();
  await stack.waitForWarehouse(await seedDemo(stack.runtime.s3, DAY));
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking'],
  });
  page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
  page.on('pageerror', (err) => {
    throw err;
  });
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

describe('the dashboard at /', () => {
  it('shows the pipeline overview: files, throughput and queues', async () => {
    await page.goto(`${stack.runtime.url}/`);
    await page.getByTestId('overview').waitFor();
    await expect.poll(() => data('throughput-chart', 'points')).toBeGreaterThan(0);
    expect(await data('throughput-chart', 'rows')).toBeGreaterThan(0);
    await expect.poll(() => page.getByTestId('tile-files').textContent()).toMatch(/Files\s*5\s*5 complete/i);
    expect(await page.getByTestId('queue-row').count()).toBe(8);
    expect(await page.getByTestId('device-row').count()).toBeGreaterThanOrEqual(5);
    await shot('overview');
  });

  it('draws the device-health heatmap from the demo data', async () => {
    await page.goto(
      `${stack.runtime.url}/?view=health&factory=demo&from=2025-06-02T00:00:00Z&to=2025-06-03T00:00:00Z`,
    );
    await expect.poll(() => data('health-grid', 'cells')).toBeGreaterThan(0);
    const [{ n }] = (await stack.queryWarehouse(
      `SELECT count(*) AS n FROM device_health_hourly WHERE factory = 'demo' AND hour >= '2025-06-02' AND hour < '2025-06-03'`,
    )) as [{ n: string }];
    expect(await page.getByTestId('health-cell').count()).toBe(Number(n));
    const score = Number(await page.getByTestId('health-cell').first().getAttribute('data-score'));
    expect(score).toBeGreaterThanOrEqual(0);
    expect(score).toBeLessThanOrEqual(100);
    await page.getByTestId('health-cell').first().hover();
    await expect.poll(() => page.getByTestId('health-tooltip').textContent()).toMatch(/readings/i);
    await shot('health');
  });

  it('charts a device’s readings with its anomalies marked, and a filter change redraws it', async () => {
    const [flagged] = await stack.queryWarehouse(
      `SELECT device, metric, count(*) AS n FROM readings WHERE factory = 'demo' AND is_anomaly
       GROUP BY ALL ORDER BY n DESC, device, metric LIMIT 1`,
    );
    expect(flagged, 'the demo data has anomalies').toBeDefined();
    const { device, metric } = flagged as { device: string; metric: string };
    await page.goto(
      `${stack.runtime.url}/?view=readings&factory=demo&device=${device}&metric=${metric}&range=all`,
    );
    await expect.poll(() => data('readings-chart', 'points')).toBeGreaterThan(10);
    expect(await data('readings-chart', 'anomalies')).toBe(Number(flagged!.n));
    expect(await page.getByTestId('anomaly-row').count()).toBe(Number(flagged!.n));
    // The canvas has the line drawn on it, not just a blank plot area.
    const canvas = page.getByTestId('readings-chart').locator('canvas').first();
    // (Runs in the page: the canvas's pixels, counted where something was painted.)
    const inked = await canvas.evaluate((el) => {
      const c = el as unknown as {
        width: number;
        height: number;
        getContext(kind: '2d'): {
          getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray };
        };
      };
      const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i]! > 0) n++;
      return n;
    });
    expect(inked).toBeGreaterThan(500);
    await shot('readings');
    const before = await page.getByTestId('readings-chart').getAttribute('data-rows');
    const other = (await page.getByTestId('metric-select').locator('option').allInnerTexts()).find(
      (m) => m && !m.startsWith(metric),
    )!;
    await page.getByTestId('metric-select').selectOption({ label: other });
    await expect.poll(() => page.url()).not.toContain(`metric=${metric}&`);
    await expect.poll(() => page.getByTestId('readings-chart').getAttribute('data-rows')).not.toBe(before);
  });

  it('filters the alarms and events table', async () => {
    await page.goto(`${stack.runtime.url}/?view=events&factory=demo`);
    await expect.poll(() => data('events-table', 'rows')).toBeGreaterThan(0);
    const severities = async () =>
      (
        await page
          .getByTestId('event-row')
          .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-severity')))
      ).map(Number);
    expect((await severities()).some((s) => s > 3)).toBe(true);
    await page.getByTestId('events-severity').selectOption('error');
    await expect.poll(async () => (await severities()).every((s) => s <= 3)).toBe(true);
    expect(await page.getByTestId('event-row').count()).toBeGreaterThan(0);
    expect(page.url()).toContain('severity=error');
    await shot('events');
  });

  it('shows why a file’s lines were rejected', async () => {
    await page.goto(`${stack.runtime.url}/?view=files&status=rejects`);
    await expect.poll(() => page.getByTestId('file-row').count()).toBe(1);
    await page.getByTestId('file-row').first().getByRole('link').click();
    await page.getByTestId('rejects-table').waitFor();
    const first = page.locator('[data-testid="reject-row"][data-line="400"]');
    await expect.poll(() => first.textContent()).toMatch(/400[\s\S]*invalid JSON[\s\S]*truncated/);
    await expect.poll(() => page.getByTestId('reject-row').count()).toBe(3);
    expect(page.url()).toMatch(/file=[0-9a-f]{24}/);
    await shot('file');
  });
});

describe('with API_TOKEN set', () => {
  it('asks for the token, refuses a wrong one, keeps the right one for the session only', async () => {
    process.env.API_TOKEN = TOKEN;
    try {
      const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
      const signedOut = await context.newPage();
      await signedOut.goto(`${stack.runtime.url}/?view=overview`);
      await signedOut.getByTestId('signin-form').waitFor();
      await signedOut.screenshot({ path: join(ARTIFACTS, 'dashboard-signin.png') });
      await signedOut.getByTestId('signin-token').fill('not-the-token-at-all');
      await signedOut.getByTestId('signin-submit').click();
      await signedOut.getByTestId('signin-error').waitFor();
      await signedOut.getByTestId('signin-token').fill(TOKEN);
      await signedOut.getByTestId('signin-submit').click();
      await signedOut.getByTestId('overview').waitFor();
      await expect
        .poll(async () => Number(await signedOut.getByTestId('throughput-chart').getAttribute('data-points')))
        .toBeGreaterThan(0);
      expect(signedOut.url()).not.toContain(TOKEN);
      // A new browser session (another context) asks again.
      const other = await (await browser.newContext()).newPage();
      await other.goto(`${stack.runtime.url}/`);
      await other.getByTestId('signin-form').waitFor();
      await context.close();
    } finally {
      delete process.env.API_TOKEN;
    }
  });
});
