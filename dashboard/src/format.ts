/** Display formats: local time, 24 h clock, unambiguous `YYYY-MM-DD` dates; English digit grouping. */
import { SEVERITY_NAMES } from '../../functions/contracts/severity.js';

const numberFormat = new Intl.NumberFormat('en');
const pad = (n: number, width = 2) => String(n).padStart(width, '0');

export const TIME_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';

export function num(n: number | null | undefined): string {
  return n === null || n === undefined ? '–' : numberFormat.format(n);
}

export function pct(part: number, whole: number): string {
  if (!whole) return '–';
  const p = (part / whole) * 100;
  return `${p > 0 && p < 0.1 ? '<0.1' : p.toFixed(p < 10 ? 1 : 0)}\u00a0%`;
}

function toDate(t: string | number | Date): Date {
  return t instanceof Date ? t : new Date(t);
}

export function dateTime(t: string | number | Date | null | undefined, seconds = false): string {
  if (t === null || t === undefined) return '–';
  const d = toDate(t);
  if (Number.isNaN(d.getTime())) return String(t);
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}${seconds ? `:${pad(d.getSeconds())}` : ''}`;
  return `${date} ${time}`;
}

export function timeOnly(t: number | Date): string {
  const d = toDate(t);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** `3 min ago`, `2 h ago`, `5 d ago` relative to `now`. */
export function ago(t: string | number | null | undefined, now = Date.now()): string {
  if (t === null || t === undefined) return '–';
  const s = Math.round((now - toDate(t).getTime()) / 1000);
  if (Number.isNaN(s)) return '–';
  if (s < 0) return 'just now';
  if (s < 90) return `${s} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** A duration in seconds: `850 ms`, `4.2 s`, `3 min 20 s`, `1 h 5 min`, `2 d 3 h`. */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '–';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds % 60)} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** ISO 8601 for URLs and API parameters, without milliseconds when they are zero. */
export function iso(t: number): string {
  return new Date(t).toISOString().replace('.000Z', 'Z');
}

/** The value of an `<input type="datetime-local">` for an instant, and back. */
export function toLocalInput(t: number): string {
  const d = new Date(t);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function fromLocalInput(value: string): number | undefined {
  if (!value) return undefined;
  const t = new Date(value).getTime(); // no zone in the string: local time
  return Number.isNaN(t) ? undefined : t;
}

/** The syslog scale's names, 0 … 7 (the contract's own list). */
export const SEVERITY_LABELS = SEVERITY_NAMES;

/** A CSS class per syslog severity band: 0–2 critical, 3 error, 4 warning, 5–7 info. */
export function severityClass(severity: number | null | undefined): string {
  if (severity === null || severity === undefined) return 'sev-unknown';
  if (severity <= 2) return 'sev-critical';
  if (severity === 3) return 'sev-error';
  if (severity === 4) return 'sev-warning';
  return 'sev-info';
}

/** Health score 0 (red) … 100 (green), through amber; calm, not neon. */
export function scoreColor(score: number): string {
  const s = Math.max(0, Math.min(100, score)) / 100;
  const stops: [number, [number, number, number]][] = [
    [0, [192, 57, 43]],
    [0.5, [224, 168, 38]],
    [0.8, [150, 190, 80]],
    [1, [46, 139, 87]],
  ];
  for (let i = 1; i < stops.length; i++) {
    const [p1, c1] = stops[i]!;
    const [p0, c0] = stops[i - 1]!;
    if (s <= p1) {
      const f = (s - p0) / (p1 - p0);
      const c = c0.map((v, j) => Math.round(v + (c1[j]! - v) * f));
      return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
    }
  }
  return 'rgb(46, 139, 87)';
}
