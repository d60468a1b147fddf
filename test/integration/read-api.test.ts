import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  DeviceSummary,
  EventRow,
  FileDetail,
  FileRow,
  HealthGrid,
  Overview,
  Page,
  ReadingSeries,
} from '../../functions/contracts/api.js';
import { seedDemo } from '../../local/demo.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

/**
 * The read API (`/api/*` of the api function) on the embedded stack, over the demo factory's files
 * and a series made to check the downsampling.
 */
let stack: TestStack;
let demoKeys: string[];
const DAY = new Date('2025-06-02T00:00:00Z');

/** A wave of 10,000 readings one second apart, then 2,000 more with spikes (scored against the first). */
const WAVE_START = Date.parse('2025-06-01T00:00:00Z');
function wave(from: number, n: number, spikes: boolean): { ms: number; value: number }[] {
  return Array.from({ length: n }, (_, j) => {
    const i = from + j;
    const spike = spikes && i % 500 === 250 ? (i % 1000 === 250 ? 80 : -80) : 0;
    return {
      ms: WAVE_START + i * 1000,
      value: Math.round((20 + 5 * Math.sin(i / 300) + spike) * 1000) / 1000,
    };
  });
}
const waveFiles = {
  'm4/2025/06/01/wave-1.jsonl': wave(0, 10_000, false),
  'm4/2025/06/01/wave-2.jsonl': wave(10_000, 2_000, true),
};
const jsonl = (points: { ms: number; value: number }[]) =>
  `${points.map((p) => JSON.stringify({ ts: new Date(p.ms).toISOString(), device: 'dev', metric: 'wave', value: p.value, unit: 'C' })).join('\n')}\n`;

async function get<T>(path: string, token?: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`${stack.runtime.url}${path}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return { status: res.status, body: (await res.json()) as T };
}

beforeAll(async () => {
  stack = await startTestStack();
  demoKeys = await seedDemo(stack.runtime.s3, DAY);
  const [first, second] = Object.entries(waveFiles);
  await stack.put(first![0], jsonl(first![1]));
  await stack.waitForWarehouse([...demoKeys, first![0]]);
  // The second file is scored against the baseline the first one made.
  await stack.put(second![0], jsonl(second![1]));
  await stack.waitForWarehouse([second![0]]);
}, 120_000);
afterAll(async () => {
  await stack?.stop();
});

describe('GET /api/readings', () => {
  it('downsamples to at most `points`, keeping each bucket’s first, last, min and max (M4)', async () => {
    const all = [...waveFiles['m4/2025/06/01/wave-1.jsonl'], ...waveFiles['m4/2025/06/01/wave-2.jsonl']];
    const from = WAVE_START;
    const to = WAVE_START + all.length * 1000;
    const { status, body } = await get<ReadingSeries>(
      `/api/readings?factory=m4&device=dev&metric=wave&points=100&from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}`,
    );
    expect(status).toBe(200);
    expect(body).toMatchObject({ rows: 12_000, downsampled: true, unit: 'C', from, to });
    expect(body.points.length).toBeLessThanOrEqual(100);
    // A bucket where the wave only rises has first = min and last = max: two points, not four.
    expect(body.points.length).toBeGreaterThanOrEqual(2 * 25);
    const times = body.points.map((p) => p[0]);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    const kept = new Set(body.points.map(([t, v]) => `${t}:${v}`));
    const buckets = 25;
    for (let b = 0; b < buckets; b++) {
      const inBucket = all.filter((p) => Math.floor(((p.ms - from) * buckets) / (to - from)) === b);
      const values = inBucket.map((p) => p.value);
      const max = Math.max(...values);
      const min = Math.min(...values);
      expect(kept.has(`${inBucket.find((p) => p.value === max)!.ms}:${max}`), `bucket ${b} max`).toBe(true);
      expect(kept.has(`${inBucket.find((p) => p.value === min)!.ms}:${min}`), `bucket ${b} min`).toBe(true);
      expect(kept.has(`${inBucket[0]!.ms}:${inBucket[0]!.value}`), `bucket ${b} first`).toBe(true);
      expect(kept.has(`${inBucket.at(-1)!.ms}:${inBucket.at(-1)!.value}`), `bucket ${b} last`).toBe(true);
    }
    // Both spike directions survive, whatever bucket they fell in.
    expect(body.points.some(([, v]) => v > 90)).toBe(true);
    expect(body.points.some(([, v]) => v < -50)).toBe(true);
  });

  it('returns the anomalies as their own points, exactly the rows flagged in the range', async () => {
    const { body } = await get<ReadingSeries>('/api/readings?factory=m4&device=dev&metric=wave&points=40');
    const flagged = await stack.queryWarehouse(
      `SELECT epoch_ms(ts) AS ms, value FROM readings WHERE factory = 'm4' AND is_anomaly ORDER BY ts`,
    );
    expect(flagged.length).toBeGreaterThanOrEqual(4); // the spikes of the second file
    expect(body.anomalies.map(([t, v]) => [t, v])).toEqual(flagged.map((r) => [Number(r.ms), r.value]));
    for (const [, , score] of body.anomalies) expect(Math.abs(score!)).toBeGreaterThan(3);
  });

  it('returns a range with fewer readings than `points` whole, and narrows to from/to', async () => {
    const from = new Date(WAVE_START + 1000 * 1000).toISOString();
    const to = new Date(WAVE_START + 1050 * 1000).toISOString();
    const { body } = await get<ReadingSeries>(
      `/api/readings?factory=m4&device=dev&metric=wave&from=${from}&to=${to}`,
    );
    expect(body).toMatchObject({ rows: 50, downsampled: false });
    expect(body.points).toEqual(
      waveFiles['m4/2025/06/01/wave-1.jsonl'].slice(1000, 1050).map((p) => [p.ms, p.value]),
    );
  });

  it('answers 400 naming each bad parameter', async () => {
    const cases: [string, RegExp][] = [
      ['/api/readings?factory=m4&device=dev', /metric: required/],
      ['/api/readings?factory=m4&device=dev&metric=wave&points=5', /points: .*>=10/],
      ['/api/readings?factory=m4&device=dev&metric=wave&points=99999', /points: .*<=5000/],
      ['/api/readings?factory=M4!&device=dev&metric=wave', /factory: a factory id/],
      ['/api/readings?factory=m4&device=dev&metric=wave&from=yesterday', /from: an ISO 8601 time/],
      [
        '/api/readings?factory=m4&device=dev&metric=wave&from=2025-06-02&to=2025-06-01',
        /to: "to" must be after "from"/,
      ],
      ['/api/readings?factory=m4&device=dev&metric=wave&sql=1', /unknown parameter sql/],
      ['/api/events?severity=loud', /severity:/],
      ['/api/events?cursor=bm90LWEtY3Vyc29y', /cursor: not a cursor this API returned/],
      ['/api/files/../../etc', /no route|id:/],
      ['/api/files/zzz', /id: 24 hexadecimal digits/],
    ];
    for (const [path, message] of cases) {
      const res = await get<{ message: string }>(path);
      expect([400, 404], path).toContain(res.status);
      expect(res.body.message, path).toMatch(message);
    }
  });

  it('treats a value with SQL in it as a value', async () => {
    const { status, body } = await get<ReadingSeries>(
      `/api/readings?factory=m4&device=${encodeURIComponent("dev' OR '1'='1")}&metric=wave`,
    );
    expect(status).toBe(200);
    expect(body.rows).toBe(0);
  });
});

describe('GET /api/events', () => {
  it('filters by device, severity and code, newest first', async () => {
    const { body } = await get<Page<EventRow>>('/api/events?factory=demo&severity=error&limit=500');
    expect(body.items.length).toBeGreaterThan(0);
    for (const e of body.items) expect(e.effective_severity ?? e.severity).toBeLessThanOrEqual(3);
    const device = body.items[0]!.device!;
    const code = body.items.find((e) => e.code)!.code!;
    const byDevice = await get<Page<EventRow>>(`/api/events?device=${device}&limit=500`);
    expect(byDevice.body.items.every((e) => e.device === device)).toBe(true);
    const byCode = await get<Page<EventRow>>(`/api/events?code=${code}&limit=500`);
    expect(byCode.body.items.length).toBeGreaterThan(0);
    expect(byCode.body.items.every((e) => e.code === code)).toBe(true);
    const ts = body.items.map((e) => e.ts);
    expect(ts).toEqual([...ts].sort().reverse());
  });

  it('pages through every event exactly once, in order', async () => {
    const [{ n }] = (await stack.queryWarehouse(
      `SELECT count(*) AS n FROM events WHERE factory = 'demo'`,
    )) as [{ n: string }];
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: { body: Page<EventRow> } = await get<Page<EventRow>>(
        `/api/events?factory=demo&limit=37${cursor ? `&cursor=${cursor}` : ''}`,
      );
      seen.push(...page.body.items.map((e) => `${e.source_key}:${e.source_line}`));
      cursor = page.body.nextCursor;
      pages++;
    } while (cursor);
    expect(seen.length).toBe(Number(n));
    expect(new Set(seen).size).toBe(seen.length);
    expect(pages).toBe(Math.ceil(Number(n) / 37));
  });
});

describe('GET /api/health, /api/devices, /api/overview', () => {
  it('scores device × hour like the warehouse’s device_health_hourly view', async () => {
    const { body } = await get<HealthGrid>(
      '/api/health?factory=demo&from=2025-06-02T00:00:00Z&to=2025-06-03T00:00:00Z',
    );
    expect(body.bucketHours).toBe(1);
    expect(body.hours).toHaveLength(24);
    expect(body.cells.length).toBeGreaterThan(0);
    const view = await stack.queryWarehouse(
      `SELECT device, epoch_ms(hour) AS hour, health_score FROM device_health_hourly
       WHERE factory = 'demo' AND hour >= '2025-06-02' AND hour < '2025-06-03'`,
    );
    expect(body.cells.map((c) => `${c.device}@${c.hour}=${c.score}`).sort()).toEqual(
      view.map((r) => `${r.device}@${Number(r.hour)}=${r.health_score}`).sort(),
    );
    // Registered devices are rows even where they have no data.
    expect(body.devices.map((d) => d.device)).toEqual(expect.arrayContaining(['press-01', 'oven-01']));
  });

  it('shows a long range in wider columns', async () => {
    const { body } = await get<HealthGrid>('/api/health?from=2025-01-01&to=2025-07-01');
    expect(body.bucketHours).toBeGreaterThan(1);
    expect(body.hours.length).toBeLessThanOrEqual(168);
  });

  it('lists the registry with health, anomalies and alarms', async () => {
    const { body } = await get<{ items: DeviceSummary[] }>('/api/devices?factory=demo');
    const press = body.items.find((d) => d.device === 'press-01')!;
    expect(press).toMatchObject({ registered: true, model: expect.any(String), line: expect.any(String) });
    expect(press.health!.score).toBeGreaterThanOrEqual(0);
    expect(press.health!.score).toBeLessThanOrEqual(100);
    const [latest] = await stack.queryWarehouse(
      `SELECT epoch_ms(max(ts)) AS ms FROM (SELECT ts FROM readings WHERE device = 'press-01' AND factory = 'demo'
       UNION ALL SELECT ts FROM events WHERE device = 'press-01' AND factory = 'demo')`,
    );
    expect(press.lastSeen).toBe(new Date(Number(latest!.ms)).toISOString());
  });

  it('summarizes the files per factory', async () => {
    const { body } = await get<Overview>('/api/overview');
    const demo = body.factories.find((f) => f.factory === 'demo')!;
    expect(demo.files).toMatchObject({ total: demoKeys.length, complete: demoKeys.length, withRejects: 1 });
    expect(demo.lines.rejected).toBe(3);
    expect(demo.lagSeconds.p95).toBeGreaterThan(0);
    expect(body.throughput.buckets.reduce((a, b) => a + b.files, 0)).toBe(demoKeys.length + 2);
    expect(body.queues!.map((q) => q.queue)).toEqual(
      expect.arrayContaining(['etl', 'etl-dlq', 'warehouse', 'warehouse-dlq']),
    );
    const overview = await get<Overview>('/api/overview?factory=m4');
    expect(overview.body.factories.map((f) => f.factory)).toEqual(['m4']);
  });
});

describe('GET /api/files', () => {
  it('finds the file with rejects and shows each rejected line with its reason', async () => {
    const { body } = await get<Page<FileRow>>('/api/files?status=rejects');
    expect(body.items.map((f) => f.source_key)).toEqual(['demo/2025/06/02/sensors-a.jsonl']);
    const detail = await get<FileDetail>(`/api/files/${body.items[0]!.id}?limit=2`);
    expect(detail.status).toBe(200);
    expect(detail.body.file).toMatchObject({ lines_total: 1200, lines_rejected: 3, complete: true });
    expect(detail.body.outputs.map((o) => o.kind)).toEqual(expect.arrayContaining(['readings']));
    expect(detail.body.rejects.items).toEqual([
      { line: 400, lines: 1, reason: 'invalid JSON', raw: '{"truncated": ' },
      { line: 800, lines: 1, reason: expect.stringMatching(/^ts: .*not a time/), raw: expect.any(String) },
    ]);
    const next = await get<FileDetail>(
      `/api/files/${body.items[0]!.id}?limit=2&cursor=${detail.body.rejects.nextCursor}`,
    );
    expect(next.body.rejects.items.map((r) => r.line)).toEqual([1200]);
    expect(next.body.rejects.nextCursor).toBeNull();
    expect((await get('/api/files/0123456789abcdef01234567')).status).toBe(404);
  });

  it('pages and searches', async () => {
    const first = await get<Page<FileRow>>('/api/files?limit=3');
    const second = await get<Page<FileRow>>(`/api/files?limit=3&cursor=${first.body.nextCursor}`);
    const ids = [...first.body.items, ...second.body.items].map((f) => f.id);
    expect(new Set(ids).size).toBe(6);
    const search = await get<Page<FileRow>>('/api/files?q=WAVE');
    expect(search.body.items.map((f) => f.source_key).sort()).toEqual(Object.keys(waveFiles));
  });
});

describe('POST /api/query stays inside its limits', () => {
  it('refuses a query that would allocate 2 GB at once, and answers the next one', async () => {
    const post = (sql: string) =>
      fetch(`${stack.runtime.url}/api/query`, { method: 'POST', body: JSON.stringify({ sql }) });
    const started = performance.now();
    const res = await post(`select length(repeat('x', 2000000000)) as n`);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toMatch(/out of memory|memory/i);
    // Before the query process it ran 35 s at 4 GB; a generous bound, not a speed target.
    expect(performance.now() - started).toBeLessThan(20_000);
    const next = await post('select 42 as n');
    expect(await next.json()).toMatchObject({ rows: [{ n: 42 }] });
  });
});

describe('access', () => {
  it('without a token, answers only to loopback names (a DNS-rebound page is refused)', async () => {
    const { request } = await import('node:http');
    const status = (host: string) =>
      new Promise<number>((resolve, reject) => {
        const url = new URL(`${stack.runtime.url}/api/overview`);
        request({ host: url.hostname, port: url.port, path: url.pathname, headers: { host } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
          .on('error', reject)
          .end();
      });
    expect(await status('evil.example:13000')).toBe(403);
    expect(await status('127.0.0.1:13000')).toBe(200);
    expect(await status('localhost:13000')).toBe(200);
  });

  it('with API_TOKEN set: the page and status open, the data behind the bearer token', async () => {
    process.env.API_TOKEN = 'a-test-token-of-16+';
    try {
      const page = await fetch(`${stack.runtime.url}/`);
      expect([200, 503]).toContain(page.status); // 503 only when the dashboard is not built
      expect((await get('/api/status')).status).toBe(200);
      for (const path of ['/api/overview', '/api/readings?factory=m4&device=dev&metric=wave', '/api/files']) {
        expect((await get(path)).status, path).toBe(401);
        expect((await get(path, 'wrong-token-wrong-token')).status, path).toBe(401);
        expect((await get(path, 'a-test-token-of-16+')).status, path).toBe(200);
      }
    } finally {
      delete process.env.API_TOKEN;
    }
  });
});
