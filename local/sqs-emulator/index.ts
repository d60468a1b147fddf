/**
 * The local runtime's SQS: a small SQS-compatible server of our own, durable and loopback-only.
 *
 * Why our own: no maintained npm emulator fits. fauxqs 1.x keeps its state in memory (a crash loses
 * every message) and listens on 0.0.0.0 whatever host it is given; fauxqs 2.x persists to SQLite but
 * `startFauxqs` hard-codes `listen({ host: "0.0.0.0" })` and does not export its store, so loopback plus
 * persistence would mean patching its internals.
 *
 * What it is: an HTTP server (`sqs-server.ts`) speaking SQS's JSON protocol (`json-protocol.ts`, the
 * AWS SDK v3's) and Query protocol (`query-protocol.ts`, older CLIs'), with the queue and message
 * actions (`queue-actions.ts`, `message-actions.ts`, `move-task-actions.ts`) over one SQLite database
 * (`queue-store.ts`, `node:sqlite`, WAL). Every change is committed before it is acknowledged, so a
 * message acknowledged to a sender survives the process being killed (not a power loss: commits are not
 * fsynced). Deadlines are stored as absolute times, so visibility timeouts and delays run on across a
 * restart.
 *
 * Run on its own with `node --import tsx local/sqs-emulator/main.ts --dir <folder>` (see `main.ts`).
 */
export { type SqsEmulator, type SqsEmulatorOptions, startSqsEmulator } from './sqs-server.js';
