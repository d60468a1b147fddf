/**
 * Deterministic sample data for the demo factory, the tests and the benchmark: the same seed and day
 * give byte-identical files (so re-seeding the demo is a no-op for the pipeline: same ETags).
 */

export const DEMO_DEVICES = ['press-01', 'press-02', 'oven-01', 'robot-01', 'conveyor-01'] as const;
export const DEMO_CODES = ['E1001', 'E1002', 'E2001', 'E2002', 'E3001', 'W4001'] as const;

/** mulberry32: a tiny seeded PRNG (no dependency needed for reproducible test data). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const METRICS = [
  { metric: 'temperature', unit: 'C', base: 60, spread: 5 },
  { metric: 'pressure', unit: 'bar', base: 120, spread: 8 },
  { metric: 'vibration', unit: 'mm/s', base: 2.5, spread: 0.6 },
] as const;

function pick<T>(r: () => number, items: readonly T[]): T {
  return items[Math.floor(r() * items.length)]!;
}

function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** JSON lines, one reading per line; `badEvery` > 0 puts a broken line every so many lines. */
export function* jsonlReadings(opts: {
  seed: number;
  lines: number;
  start: Date;
  stepMs?: number;
  badEvery?: number;
}): Generator<string> {
  const r = rng(opts.seed);
  const step = opts.stepMs ?? 1000;
  for (let i = 0; i < opts.lines; i++) {
    if (opts.badEvery && i % opts.badEvery === opts.badEvery - 1) {
      yield Math.floor(i / opts.badEvery) % 2 === 0
        ? '{"truncated": '
        : '{"ts": "not a time", "device": "press-01", "metric": "temperature", "value": 1}';
      continue;
    }
    const m = pick(r, METRICS);
    // A rare spike, so anomaly detection has something to find.
    const spike = r() < 0.002 ? m.spread * 12 : 0;
    yield JSON.stringify({
      ts: new Date(opts.start.getTime() + i * step).toISOString(),
      device: pick(r, DEMO_DEVICES),
      metric: m.metric,
      value: round(m.base + (r() - 0.5) * 2 * m.spread + spike),
      unit: m.unit,
    });
  }
}

/** A wide CSV: one row per time step and machine, one column per metric. */
export function* wideCsv(opts: {
  seed: number;
  lines: number;
  start: Date;
  stepMs?: number;
  delimiter?: string;
}): Generator<string> {
  const r = rng(opts.seed);
  const d = opts.delimiter ?? ',';
  const step = opts.stepMs ?? 1000;
  yield ['timestamp', 'machine', 'temperature_c', 'pressure_bar', 'vibration_mm_s', 'speed_rpm'].join(d);
  for (let i = 0; i < opts.lines - 1; i++) {
    const ts = new Date(opts.start.getTime() + i * step).toISOString().replace('T', ' ').slice(0, 19);
    yield [
      ts,
      pick(r, DEMO_DEVICES),
      round(60 + r() * 10, 2),
      round(118 + r() * 6, 2),
      round(2 + r(), 3),
      Math.round(1400 + r() * 200),
    ].join(d);
  }
}

const SYSLOG_MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MESSAGES = [
  ['E1001', 'hydraulic pressure below threshold'],
  ['E1002', 'hydraulic pump overcurrent'],
  ['E2001', 'oven zone 2 over temperature'],
  ['E2002', 'thermocouple open circuit'],
  ['E3001', 'robot axis 3 following error'],
  ['W4001', 'conveyor belt slip detected'],
] as const;

/** Controller syslog: alternating RFC 5424 and RFC 3164 lines. */
export function* syslogLines(opts: {
  seed: number;
  lines: number;
  start: Date;
  stepMs?: number;
}): Generator<string> {
  const r = rng(opts.seed);
  const step = opts.stepMs ?? 1000;
  for (let i = 0; i < opts.lines; i++) {
    const t = new Date(opts.start.getTime() + i * step);
    const host = pick(r, DEMO_DEVICES);
    const severity = r() < 0.7 ? 6 : r() < 0.6 ? 4 : 3;
    const pri = 16 * 8 + severity; // facility local0
    const [code, text] = pick(r, MESSAGES);
    const msg = severity <= 4 ? `${code} ${text}` : `cycle ${i} completed in ${round(20 + r() * 5, 2)} s`;
    if (i % 2 === 0) {
      yield `<${pri}>1 ${t.toISOString()} ${host} plc 2101 CYCLE [meta line="A"] ${msg}`;
    } else {
      const stamp = `${SYSLOG_MONTHS[t.getUTCMonth()]} ${String(t.getUTCDate()).padStart(2, ' ')} ${t.toISOString().slice(11, 19)}`;
      yield `<${pri}>${stamp} ${host} plc[2101]: ${msg}`;
    }
  }
}

/** A templated controller log: `<Date> <Time> <Pid> <Level> <Component>: <Content>` with yyMMdd HHmmss. */
export function* templatedLog(opts: {
  seed: number;
  lines: number;
  start: Date;
  stepMs?: number;
}): Generator<string> {
  const r = rng(opts.seed);
  const step = opts.stepMs ?? 1000;
  const levels = ['INFO', 'INFO', 'INFO', 'WARN', 'ERROR'];
  const components = ['hydraulics', 'drive', 'safety', 'io'];
  for (let i = 0; i < opts.lines; i++) {
    const t = new Date(opts.start.getTime() + i * step);
    const iso = t.toISOString();
    const date = iso.slice(2, 10).replace(/-/g, '');
    const time = iso.slice(11, 19).replace(/:/g, '');
    const level = pick(r, levels);
    const [code, text] = pick(r, MESSAGES);
    const content =
      level === 'INFO' ? `stroke ${i} ok, force ${round(800 + r() * 50, 1)} kN` : `${code} ${text}`;
    yield `${date} ${time} ${1000 + (i % 7)} ${level} ${pick(r, components)}: ${content}`;
  }
}

export function joinLines(lines: Iterable<string>): string {
  let out = '';
  for (const l of lines) out += `${l}\n`;
  return out;
}
