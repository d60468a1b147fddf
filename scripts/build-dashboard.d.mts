/** Types of build-dashboard.mjs, for tests (TypeScript) that build the page in their setup. */
export declare const DASHBOARD_SRC: string;
export declare const DASHBOARD_DIST: string;
/** Builds dashboard/src into `outdir` (default dashboard/dist): index.html, app.js, app.css; their sizes. */
export declare function buildDashboard(options?: {
  outdir?: string;
  minify?: boolean;
  sourcemap?: boolean;
}): Promise<{ outdir: string; files: Record<string, number> }>;
