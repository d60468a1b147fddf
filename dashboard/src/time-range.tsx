import { useEffect, useState } from 'preact/hooks';
import { dateTime, fromLocalInput, iso, toLocalInput } from './format.js';
import { navigate, type Route } from './route.js';

/**
 * Time ranges: a preset (`1h` … `all`) reaching back from an anchor — the latest data where it is
 * known (a plant's files arrive late; "the last hour" of an idle line would be empty), else now — or a
 * custom `from`/`to` (both in the URL).
 */

const HOUR = 3_600_000;
export const PRESET_MS: Record<string, number | null> = {
  '1h': HOUR,
  '6h': 6 * HOUR,
  '24h': 24 * HOUR,
  '48h': 48 * HOUR,
  '7d': 7 * 24 * HOUR,
  '30d': 30 * 24 * HOUR,
  '90d': 90 * 24 * HOUR,
  all: null,
};
const PRESET_LABEL: Record<string, string> = {
  '1h': '1 h',
  '6h': '6 h',
  '24h': '24 h',
  '48h': '48 h',
  '7d': '7 d',
  '30d': '30 d',
  '90d': '90 d',
  all: 'All',
};

export interface Range {
  /** Epoch ms; undefined = unbounded. */
  from: number | undefined;
  to: number | undefined;
  /** The preset in force, or undefined for a custom range. */
  preset: string | undefined;
}

function parseTime(s: string | undefined): number | undefined {
  if (!s) return undefined;
  const t = Date.parse(s);
  return Number.isNaN(t) ? undefined : t;
}

/**
 * The range a route asks for. `align` rounds a preset's end up to that many ms (the heatmap's hours);
 * otherwise a preset ends a second after the anchor, so the anchor's own reading is inside.
 */
export function resolveRange(
  route: Route,
  defaultPreset: string,
  anchor: number | undefined,
  align?: number,
): Range {
  const from = parseTime(route.from);
  const to = parseTime(route.to);
  if (from !== undefined || to !== undefined) return { from, to, preset: undefined };
  const preset = route.range && route.range in PRESET_MS ? route.range : defaultPreset;
  const span = PRESET_MS[preset];
  if (span === null || span === undefined) return { from: undefined, to: undefined, preset };
  const base = anchor ?? Date.now();
  const end = align ? Math.ceil((base + 1) / align) * align : base + 1000;
  return { from: end - span, to: end, preset };
}

export function rangeParams(range: Range): { from: string | undefined; to: string | undefined } {
  return {
    from: range.from === undefined ? undefined : iso(range.from),
    to: range.to === undefined ? undefined : iso(range.to),
  };
}

export function describeRange(range: Range): string {
  if (range.from === undefined && range.to === undefined) return 'all time';
  const a = range.from === undefined ? '…' : dateTime(range.from);
  const b = range.to === undefined ? '…' : dateTime(range.to);
  // Same day: the second date is implied.
  return a.slice(0, 10) === b.slice(0, 10) ? `${a} – ${b.slice(11)}` : `${a} – ${b}`;
}

export function TimeRangePicker(props: {
  route: Route;
  range: Range;
  presets: string[];
  /** What presets reach back from, for the tooltip: "the latest reading", "now" … */
  anchorLabel: string;
}) {
  const { route, range, presets } = props;
  const [custom, setCustom] = useState(range.preset === undefined);
  const [fromText, setFromText] = useState('');
  const [toText, setToText] = useState('');
  useEffect(() => {
    // The inputs follow the range shown (a zoom, a preset, back/forward).
    const now = Date.now();
    setFromText(toLocalInput(range.from ?? (range.to ?? now) - 24 * HOUR));
    setToText(toLocalInput(range.to ?? now));
    if (range.preset === undefined) setCustom(true);
  }, [range.from, range.to, range.preset]);

  const choose = (preset: string) => {
    setCustom(false);
    navigate({ ...route, range: preset, from: undefined, to: undefined });
  };
  const apply = (e: Event) => {
    e.preventDefault();
    const from = fromLocalInput(fromText);
    const to = fromLocalInput(toText);
    if (from === undefined || to === undefined || from >= to) return;
    navigate({ ...route, range: undefined, from: iso(from), to: iso(to) });
  };
  const fromValue = fromLocalInput(fromText);
  const toValue = fromLocalInput(toText);
  const invalid = fromValue === undefined || toValue === undefined || fromValue >= toValue;

  return (
    <div class="range" data-testid="time-range" data-from={range.from ?? ''} data-to={range.to ?? ''}>
      <fieldset class="segmented">
        <legend class="sr-only">Time range</legend>
        {presets.map((p) => (
          <button
            type="button"
            key={p}
            class={!custom && range.preset === p ? 'active' : ''}
            aria-pressed={!custom && range.preset === p}
            data-testid="range-preset"
            data-range={p}
            title={p === 'all' ? 'All the data' : `The ${PRESET_LABEL[p]} up to ${props.anchorLabel}`}
            onClick={() => choose(p)}
          >
            {PRESET_LABEL[p] ?? p}
          </button>
        ))}
        <button
          type="button"
          class={custom ? 'active' : ''}
          aria-pressed={custom}
          data-testid="range-preset"
          data-range="custom"
          onClick={() => setCustom(true)}
        >
          Custom
        </button>
      </fieldset>
      {custom ? (
        <form class="range-custom" onSubmit={apply}>
          <input
            type="datetime-local"
            aria-label="From"
            data-testid="range-from"
            value={fromText}
            onInput={(e) => setFromText(e.currentTarget.value)}
          />
          <span class="muted">to</span>
          <input
            type="datetime-local"
            aria-label="To"
            data-testid="range-to"
            value={toText}
            onInput={(e) => setToText(e.currentTarget.value)}
          />
          <button type="submit" disabled={invalid} data-testid="range-apply">
            Apply
          </button>
        </form>
      ) : (
        <span class="range-text muted" data-testid="range-text">
          {describeRange(range)}
        </span>
      )}
    </div>
  );
}
