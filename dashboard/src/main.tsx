/**
 * The pipeline's dashboard: the page served at `/` by the api function, reading the same-origin read
 * API (`/api/…`, contract in functions/contracts/api.ts, whose response types are imported here as
 * types only). Built by scripts/build-dashboard.mjs into dashboard/dist/ (index.html, app.js, app.css).
 *
 * State is in the URL's query string (see route.ts): `view` = overview | health | readings | events |
 * files, and `factory`, `device`, `metric`, `range` (1h, 6h, 24h, 48h, 7d, 30d, 90d, all) or `from`/`to`
 * (ISO 8601), `severity`, `code`, `status`, `q`, `file`.
 *
 * Test ids (`data-testid`) and the `data-*` each carries — what was drawn, for browser tests:
 *
 * | test id            | where / data                                                                      |
 * | ------------------ | --------------------------------------------------------------------------------- |
 * | app                | root; `data-view` (the view shown)                                                |
 * | nav-tab            | tab links; `data-view`, `aria-current="page"` on the active one                   |
 * | factory-select     | header factory filter (value "" = all factories)                                  |
 * | refresh            | header button: fetch everything again                                             |
 * | signin-form        | shown on a 401; `signin-token` (input), `signin-submit`, `signin-error` (wrong)  |
 * | signout            | header button, present while a token is kept                                      |
 * | error              | an API error banner (text: the API's message)                                     |
 * | loading / empty    | placeholders while loading / when there is nothing to show (also over an empty   |
 * |                    | readings chart)                                                                   |
 * | time-range         | range picker; `data-from`/`data-to` (epoch ms, "" = open); `range-preset` buttons |
 * |                    | (`data-range`: 1h … all, custom, `aria-pressed`), `range-from`, `range-to`,       |
 * |                    | `range-apply`, `range-text`                                                       |
 * | overview           | the overview view                                                                 |
 * | tile-files, tile-lines, tile-rows, tile-lag, tile-warehouse | overview figures; `lag-p50`, `lag-p95` |
 * | dlq-alert          | banner per non-empty dead-letter queue                                            |
 * | factory-row        | per-factory status row (when several factories); `data-factory`                  |
 * | throughput-chart   | `data-points` (buckets drawn), `data-bucket-seconds`, `data-rows`, `data-rejected` |
 * |                    | (sums over the buckets)                                                           |
 * | queue-row          | `data-queue`, `data-dlq` ("true"/"false"), `data-depth` (waiting + in flight)     |
 * | device-row         | overview device table; `data-device`                                              |
 * | health-grid        | heatmap; `data-devices`, `data-hours` (columns), `data-cells`, `data-bucket-hours` |
 * | health-truncated   | banner: the API answered `truncated: true`                                        |
 * | health-cell        | a device-hour with data (button); `data-device`, `data-factory`, `data-hour`     |
 * |                    | (ISO), `data-score`; click → readings for that device around that hour            |
 * | health-tooltip     | hover tooltip: readings, anomalies, errors, warnings                              |
 * | device-select, metric-select | readings explorer pickers                                               |
 * | readings-chart     | `data-points`, `data-anomalies`, `data-rows` (before downsampling), `data-from`,   |
 * |                    | `data-to` (epoch ms, as answered), `data-downsampled`; drag to zoom (re-queries)  |
 * | readings-summary   | "N readings, downsampled to M points · K anomalies · range"                      |
 * | zoom-out           | widens the range ×3 around its middle                                             |
 * | anomaly-row        | one per anomaly listed under the chart                                            |
 * | events-table       | `data-rows`; `event-row` per event (`data-severity`, `data-code`, `data-device`)  |
 * | events-device, events-severity, events-code | events filters; `events-more`, `events-count`            |
 * | files-table        | `data-rows`; `file-row` (`data-id`, `data-status`: complete, incomplete, quarantined) |
 * |                    | (`data-status`), `files-q` (search), `files-more`, `files-count`                  |
 * | file-detail        | a file's view, `data-id`; `file-back`, `file-manifest`, `file-output-row`,        |
 * |                    | `quarantine-reason`                                                               |
 * | rejects-table      | `data-rows`; `reject-row` (`data-line`; cells: line number, reason, raw line),    |
 * |                    | `rejects-more`, `rejects-count`                                                   |
 */
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { DeviceSummary } from '../../functions/contracts/api.js';
import { itemsOf, type List, signOut, useApi, useAuth } from './api.js';
import { TIME_ZONE } from './format.js';
import { linkProps, navigate, useRoute, VIEWS, type View, viewRoute } from './route.js';
import { EventsView } from './views/events.js';
import { FilesView } from './views/files.js';
import { HealthView } from './views/health.js';
import { OverviewView } from './views/overview.js';
import { ReadingsView } from './views/readings.js';
import { SignIn } from './views/signin.js';

const TITLES: Record<View, string> = {
  overview: 'Overview',
  health: 'Device health',
  readings: 'Readings',
  events: 'Alarms & events',
  files: 'Files',
};

function App() {
  const route = useRoute();
  const auth = useAuth();
  const [refresh, setRefresh] = useState(0);
  // The device catalogue (all factories): factory list, pickers, anchors of the time presets.
  const catalogue = useApi<List<DeviceSummary>>(auth.needed ? null : '/api/devices', {}, refresh);
  const devices = itemsOf(catalogue.data);
  const factories = [
    ...new Set([...(devices ?? []).map((d) => d.factory), ...(route.factory ? [route.factory] : [])]),
  ].sort();

  // Before the first load (no warehouse yet, API not ready), everything is tried again every 30 s.
  const failed = catalogue.error !== undefined && !auth.needed;
  useEffect(() => {
    if (!failed) return;
    const id = window.setTimeout(() => setRefresh((r) => r + 1), 30_000);
    return () => window.clearTimeout(id);
  }, [failed, refresh]);

  useEffect(() => {
    document.title = `${TITLES[route.view]}${route.factory ? ` · ${route.factory}` : ''} · Telemetry pipeline`;
  }, [route.view, route.factory]);

  const props = { route, devices, devicesError: catalogue.error, refresh };
  return (
    <div class="app" data-testid="app" data-view={route.view}>
      <header class="topbar">
        <a class="brand" {...linkProps({ view: 'overview', factory: route.factory })}>
          <span class="brand-mark" aria-hidden="true" />
          Telemetry pipeline
        </a>
        <nav class="tabs" aria-label="Views">
          {VIEWS.map((view) => (
            <a
              key={view}
              class={`tab ${route.view === view ? 'active' : ''}`}
              aria-current={route.view === view ? 'page' : undefined}
              data-testid="nav-tab"
              data-view={view}
              {...linkProps(viewRoute(view, route))}
            >
              {TITLES[view]}
            </a>
          ))}
        </nav>
        <div class="topbar-right">
          <label class="field field-dark">
            <span>Factory</span>
            <select
              data-testid="factory-select"
              value={route.factory ?? ''}
              onChange={(e) =>
                navigate({
                  ...route,
                  factory: e.currentTarget.value || undefined,
                  device: undefined,
                  metric: undefined,
                  file: undefined,
                })
              }
            >
              <option value="">All factories</option>
              {factories.map((f) => (
                <option key={f} value={f}>
                  {f}
                </option>
              ))}
            </select>
          </label>
          <button
            type="button"
            class="ghost"
            data-testid="refresh"
            title="Fetch everything again"
            onClick={() => setRefresh((r) => r + 1)}
          >
            ↻ Refresh
          </button>
          {auth.hasToken && (
            <button type="button" class="ghost" data-testid="signout" onClick={signOut}>
              Sign out
            </button>
          )}
        </div>
      </header>
      <main class="content">
        {auth.needed ? (
          <SignIn refused={auth.refused} />
        ) : route.view === 'overview' ? (
          <OverviewView {...props} />
        ) : route.view === 'health' ? (
          <HealthView {...props} />
        ) : route.view === 'readings' ? (
          <ReadingsView {...props} />
        ) : route.view === 'events' ? (
          <EventsView {...props} />
        ) : (
          <FilesView route={route} refresh={refresh} />
        )}
      </main>
      <footer class="footer muted">
        Times in {TIME_ZONE} · {TITLES[route.view]}
      </footer>
    </div>
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);
