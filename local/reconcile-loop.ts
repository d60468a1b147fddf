import type { ReconcileReport } from '../functions/reconcile/reconcile.js';

/** The reconciler's last outcome, for `/health`. */
export type ReconcileStatus =
  | { state: 'not-run-yet' }
  | { state: 'ok'; report: ReconcileReport }
  | { state: 'failed'; at: string; error: string; lastReport?: ReconcileReport };

/**
 * Runs the `reconcile` function at start-up and then every `intervalSeconds` — deployed, EventBridge
 * Scheduler runs it every 15 minutes; locally it also repairs what a crash of this very process left
 * (a restart starts with a pass). One run at a time; a failed run is remembered until one succeeds, so
 * `/health` can say so.
 */
export class ReconcileLoop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  status: ReconcileStatus = { state: 'not-run-yet' };

  constructor(
    private readonly run: () => Promise<ReconcileReport>,
    private readonly intervalSeconds: number,
  ) {}

  start(): void {
    void this.runOnce();
  }

  /** One pass now (unless one is under way, which is awaited instead). */
  runOnce(): Promise<void> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
      if (!this.stopped) this.timer = setTimeout(() => void this.runOnce(), this.intervalSeconds * 1000);
    });
    return this.running;
  }

  private async pass(): Promise<void> {
    clearTimeout(this.timer);
    try {
      this.status = { state: 'ok', report: await this.run() };
    } catch (err) {
      const lastReport = this.status.state === 'ok' ? this.status.report : undefined;
      // The function has logged and counted the failure; /health reports it until a run succeeds.
      this.status = {
        state: 'failed',
        at: new Date().toISOString(),
        error: (err as Error).message,
        lastReport,
      };
    }
  }

  /** Stops the timer; a pass under way is not waited for (every stage is idempotent). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
