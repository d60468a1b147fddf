import { createHash } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import { join } from 'node:path';
import { ListBucketsCommand, type S3Client } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, ListQueuesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { bearerMatches } from '../functions/core/bearer.js';
import { logger } from '../functions/core/logger.js';
import { parseS3Notification } from '../functions/core/s3-event.js';
import { metrics, registry } from '../functions/core/telemetry.js';
import type { ReconcileReport } from '../functions/reconcile/reconcile.js';
import {
  type FunctionName,
  type FunctionSpec,
  type QueueName,
  retentionRules,
  topology,
} from '../topology/topology.js';
import { refusal } from './auth.js';
import { BucketPoller } from './bucket-poller.js';
import { type Emulator, startS3, startSqs } from './emulators.js';
import { EventSource } from './event-source.js';
import { closeFunctions, invokeFunction, type LambdaHandler, loadFunctions } from './functions.js';
import { json, type Route, startHttpServer } from './http-server.js';
import { NotificationRouter } from './notifications.js';
import { ReconcileLoop } from './reconcile-loop.js';
import { dlqUrl, ensureBuckets, ensureQueues, localS3, localSqs } from './resources.js';
import { scheduleRetention, sweepRetention } from './retention.js';
import { scheduledEvent, startSchedule } from './scheduler.js';
import { DEFAULT_KEY, exportFunctionEnv, type LocalSettings, localSettings } from './settings.js';
import { verifySigV4 } from './sigv4.js';

export interface Runtime {
  settings: LocalSettings;
  s3: S3Client;
  sqs: SQSClient;
  queueUrls: Record<QueueName, string>;
  router: NotificationRouter;
  functions: Map<FunctionName, LambdaHandler>;
  invoke(name: FunctionName, event: unknown): Promise<unknown>;
  /** Messages visible + in flight, per queue and its DLQ. */
  queueDepths(): Promise<Record<string, number>>;
  /** The reconciler that runs at start-up and every `RECONCILE_INTERVAL_SECONDS`. */
  reconciler: ReconcileLoop;
  stop(): Promise<void>;
  url: string;
}

export interface RuntimeOptions {
  /**
   * Factories whose sources the local schedule leaves out: `dev --no-demo` does not start the demo
   * factory's remotes, so its sources would only fail into the fetch DLQ every 5 minutes.
   */
  unscheduledFactories?: readonly string[];
}

/** The input of the runtime's scheduled events (the schedule function reads `skipFactories`). */
export function scheduleDetail(options: RuntimeOptions): { skipFactories: string[] } {
  return { skipFactories: [...(options.unscheduledFactories ?? [])] };
}

/**
 * Starts the local stack: emulators (unless endpoints are configured), buckets and queues from the
 * topology, the functions in this process behind SQS event sources, notification routing, and the
 * HTTP server (health, Lambda Invoke API, metrics).
 */
export async function startRuntime(
  extraRoutes: (rt: Runtime) => Route[] = () => [],
  options: RuntimeOptions = {},
): Promise<Runtime> {
  const settings = localSettings();
  const emulators: Emulator[] = [];
  const sources: EventSource[] = [];
  const sourceNames: FunctionName[] = [];
  let server: Server | undefined;
  let poller: BucketPoller | undefined;
  const stopSchedules: (() => void)[] = [];
  const s3 = localS3(settings);
  const sqs = localSqs(settings);

  // Objects created before the router exists wait here (the S3 starts before the queues exist).
  let router: NotificationRouter | undefined;
  const early: Parameters<NotificationRouter['route']>[0][] = [];
  const onCreated = (o: Parameters<NotificationRouter['route']>[0]) => {
    if (settings.notifications !== 'events') return; // webhook or polling mode: the store's own events are not used
    if (!router) {
      early.push(o);
      return;
    }
    router
      .route(o)
      .catch((err) =>
        logger.error({ err, bucket: o.bucket, key: o.key }, 'notification could not be queued'),
      );
  };

  try {
    if (settings.embeddedSqs) emulators.push(await startSqs(settings));
    if (settings.embeddedS3) emulators.push(await startS3(settings, onCreated));
    await ensureBuckets(s3);
    // Retention: what S3 lifecycle rules do deployed (the same rules, `RETENTION_DAYS` included).
    const retention = retentionRules(process.env.RETENTION_DAYS);
    stopSchedules.push(scheduleRetention(() => sweepRetention(s3, retention, (b) => b)));
    const queueUrls = await ensureQueues(sqs);
    exportFunctionEnv(settings, queueUrls);
    // The api function's overview reads the dead-letter queues' depths too (deployed: set by the stack).
    for (const name of Object.keys(topology.queues) as QueueName[]) {
      process.env[`DLQ_URL_${name.toUpperCase()}`] = await dlqUrl(sqs, name);
    }
    router = new NotificationRouter(sqs, s3, queueUrls, settings.AWS_REGION);
    for (const o of early.splice(0)) onCreated(o);

    const functions = await loadFunctions();
    const invoke = (name: FunctionName, event: unknown) => invokeFunction(name, functions.get(name)!, event);

    poller =
      settings.notifications === 'poll'
        ? new BucketPoller(
            s3,
            join(settings.PIPELINE_DATA, 'poll-state.json'),
            (o) => router!.route(o),
            settings.POLL_INTERVAL_SECONDS * 1000,
          )
        : undefined;
    poller?.start();
    for (const [name, spec] of Object.entries(topology.functions) as [FunctionName, FunctionSpec][]) {
      const trigger = spec.trigger;
      if ('url' in trigger) continue; // served under /api by the HTTP server below
      if (name === 'reconcile') continue; // run by the ReconcileLoop below: at start-up, then more often
      if ('schedule' in trigger) {
        // Scheduled functions: croner fires the same expression EventBridge Scheduler would.
        stopSchedules.push(
          startSchedule(trigger.schedule, (at) => {
            invoke(name, scheduledEvent(at, name, scheduleDetail(options))).catch(() => undefined);
          }),
        );
        continue;
      }
      const queueUrl = queueUrls[trigger.queue];
      const attrs = await sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }),
      );
      const source = new EventSource(sqs, {
        functionName: name,
        queueUrl,
        queueArn: attrs.Attributes?.QueueArn ?? '',
        region: settings.AWS_REGION,
        batchSize: trigger.batchSize,
        batchWindowSeconds: trigger.batchWindowSeconds,
        fifo: topology.queues[trigger.queue].fifo,
        retryDelaySeconds: settings.LOCAL_RETRY_DELAY_SECONDS,
        invoke: (event) => invoke(name, event),
      });
      source.start();
      sources.push(source);
      sourceNames.push(name);
    }

    const queueDepths = async () => {
      const out: Record<string, number> = {};
      for (const name of Object.keys(topology.queues) as QueueName[]) {
        for (const [label, url] of [
          [name, queueUrls[name]],
          [`${name}-dlq`, await dlqUrl(sqs, name)],
        ] as const) {
          const a = await sqs.send(
            new GetQueueAttributesCommand({
              QueueUrl: url,
              AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
            }),
          );
          out[label] =
            Number(a.Attributes?.ApproximateNumberOfMessages ?? 0) +
            Number(a.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0);
        }
      }
      return out;
    };

    const reconciler = new ReconcileLoop(
      async () => (await invoke('reconcile', scheduledEvent(new Date(), 'reconcile'))) as ReconcileReport,
      settings.RECONCILE_INTERVAL_SECONDS,
    );

    const runtime: Runtime = {
      settings,
      reconciler,
      s3,
      sqs,
      queueUrls,
      router,
      functions,
      invoke,
      queueDepths,
      url: `http://127.0.0.1:${settings.RUNTIME_PORT}`,
      async stop() {
        reconciler.stop();
        await poller?.stop();
        for (const stopSchedule of stopSchedules) stopSchedule();
        // In-flight messages go back to their queue first, while the queue is still there.
        await Promise.all(sources.map((s) => s.stop()));
        server?.close();
        server?.closeAllConnections();
        await closeFunctions().catch((err) => logger.warn({ err }, 'closing functions failed'));
        for (const e of emulators.reverse())
          await e.stop().catch((err) => logger.warn({ err, emulator: e.name }, 'stop failed'));
        s3.destroy();
        sqs.destroy();
      },
    };

    const routes: Route[] = [
      async (req, _body, url) => {
        if (req.method !== 'GET' || url.pathname !== '/health') return undefined;
        const parts: Record<string, string> = {};
        await s3.send(new ListBucketsCommand({})).then(
          () => (parts.s3 = 'up'),
          (e: Error) => (parts.s3 = `down: ${e.message}`),
        );
        await sqs.send(new ListQueuesCommand({})).then(
          () => (parts.sqs = 'up'),
          (e: Error) => (parts.sqs = `down: ${e.message}`),
        );
        sources.forEach((s, i) => {
          parts[`function:${sourceNames[i]}`] = s.isRunning ? 'up' : 'stopped';
        });
        const r = reconciler.status;
        parts.reconciler = r.state === 'failed' ? `failed at ${r.at}: ${r.error}` : 'up';
        const ok = Object.values(parts).every((v) => v === 'up');
        return json(ok ? 200 : 503, {
          status: ok ? 'ok' : 'degraded',
          parts,
          reconciler: r.state === 'ok' ? r.report : r.state === 'failed' ? r.lastReport : undefined,
        });
      },
      async (req, _body, url) => {
        if (req.method !== 'GET' || url.pathname !== '/metrics') return undefined;
        for (const [queue, n] of Object.entries(await queueDepths())) metrics.queueDepth.set({ queue }, n);
        return {
          status: 200,
          body: await registry.metrics(),
          headers: { 'content-type': registry.contentType },
        };
      },
      async (req, body, url) => {
        // The Lambda Invoke API, so `aws lambda invoke --endpoint-url http://127.0.0.1:3000` works.
        const m = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/.exec(url.pathname);
        if (req.method !== 'POST' || !m) return undefined;
        const refused = refusal(req, {
          token: settings.API_TOKEN,
          loopback: isLoopback(settings.RUNTIME_HOST),
          defaultKeys:
            settings.AWS_ACCESS_KEY_ID === DEFAULT_KEY && settings.AWS_SECRET_ACCESS_KEY === DEFAULT_KEY,
          signed: () => signedByLocalKey(req, body, settings),
        });
        if (refused) {
          return json(
            403,
            { Type: 'User', Message: refused },
            { 'x-amzn-errortype': 'AccessDeniedException' },
          );
        }
        const name = decodeURIComponent(m[1]!) as FunctionName;
        if (!functions.has(name)) {
          return json(
            404,
            { Type: 'User', Message: `Function not found: ${name}` },
            { 'x-amzn-errortype': 'ResourceNotFoundException' },
          );
        }
        let event: unknown;
        try {
          event = body.length ? JSON.parse(body.toString('utf8')) : {};
        } catch {
          return json(
            400,
            { Type: 'User', Message: 'payload is not JSON' },
            { 'x-amzn-errortype': 'InvalidRequestContentException' },
          );
        }
        try {
          const result = await invoke(name, event);
          return json(200, result ?? null, { 'x-amz-executed-version': '$LATEST' });
        } catch (err) {
          return json(
            200,
            { errorType: (err as Error).name, errorMessage: (err as Error).message },
            { 'x-amz-function-error': 'Unhandled' },
          );
        }
      },
      async (req, body, url) => {
        // MinIO's webhook target (MINIO_NOTIFY_WEBHOOK_ENDPOINT): the same routing as embedded events.
        if (url.pathname !== '/hooks/s3') return undefined;
        if (req.method !== 'POST') return json(405, { message: 'POST only' });
        if (!settings.WEBHOOK_TOKEN) return json(503, { message: 'webhook disabled: set WEBHOOK_TOKEN' });
        if (!bearerMatches(req.headers.authorization, settings.WEBHOOK_TOKEN))
          return json(401, { message: 'bad or missing bearer token' });
        let events: ReturnType<typeof parseS3Notification>;
        try {
          events = parseS3Notification(body.toString('utf8'), 'webhook');
        } catch (err) {
          return json(400, { message: (err as Error).message });
        }
        // Non-2xx only when an event could not be queued: MinIO then retries it from its queue dir.
        try {
          let queued = 0;
          for (const e of events) {
            queued += (
              await router!.route({
                bucket: e.bucket,
                key: e.key,
                eTag: e.eTag,
                size: e.size,
                eventName: e.eventName,
              })
            ).length;
          }
          return json(200, { events: events.length, queued });
        } catch (err) {
          logger.error({ err }, 'webhook event could not be queued');
          return json(503, { message: `could not queue: ${(err as Error).message}` });
        }
      },
      async (req, body, url) => {
        // The api function behind a Function URL-shaped event, as Lambda would call it: the dashboard
        // page (`/`, `/assets/…`) and the read API (`/api/…`).
        if (
          url.pathname !== '/' &&
          !url.pathname.startsWith('/api/') &&
          !url.pathname.startsWith('/assets/')
        ) {
          return undefined;
        }
        // Open without a token on loopback, so only for loopback names: a page whose DNS name was
        // rebound to 127.0.0.1 sends its own name as Host, and is refused.
        if (!settings.API_TOKEN && isLoopback(settings.RUNTIME_HOST) && !isLoopbackHost(req.headers.host)) {
          return json(403, { message: 'open locally only as 127.0.0.1 or localhost: set API_TOKEN' });
        }
        const event = {
          version: '2.0',
          rawPath: url.pathname,
          rawQueryString: url.search.slice(1),
          queryStringParameters: Object.fromEntries(url.searchParams),
          headers: Object.fromEntries(
            Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : (v ?? '')]),
          ),
          requestContext: { http: { method: req.method ?? 'GET', path: url.pathname } },
          body: body.toString('utf8'),
          isBase64Encoded: false,
        };
        const res = (await invoke('api', event)) as {
          statusCode: number;
          headers: Record<string, string>;
          body: string;
          isBase64Encoded?: boolean;
        };
        return {
          status: res.statusCode,
          headers: res.headers,
          body: res.isBase64Encoded ? Buffer.from(res.body, 'base64') : res.body,
        };
      },
      ...extraRoutes(runtime),
    ];
    server = await startHttpServer(settings.RUNTIME_PORT, routes, settings.RUNTIME_HOST);
    logger.info({ url: runtime.url, s3: settings.s3Endpoint, sqs: settings.sqsEndpoint }, 'local runtime up');
    reconciler.start();
    return runtime;
  } catch (err) {
    // Started no further than this: undo what did start, so nothing runs against stopped stores.
    await poller?.stop();
    for (const stopSchedule of stopSchedules) stopSchedule();
    await Promise.all(sources.map((s) => s.stop()));
    server?.close();
    for (const e of emulators.reverse()) await e.stop().catch(() => undefined);
    s3.destroy();
    sqs.destroy();
    throw err;
  }
}

/** Whether a request is SigV4-signed with the local key pair, as `aws lambda invoke` signs it. */
function signedByLocalKey(req: IncomingMessage, body: Buffer, settings: LocalSettings): boolean {
  const [rawPath = '/', rawQuery = ''] = (req.url ?? '/').split('?', 2);
  return verifySigV4(
    { method: req.method ?? 'POST', rawPath, rawQuery, headers: req.headers },
    createHash('sha256').update(body).digest('hex'),
    { accessKeyId: settings.AWS_ACCESS_KEY_ID, secretAccessKey: settings.AWS_SECRET_ACCESS_KEY },
    settings.AWS_REGION,
    'lambda',
  ).ok;
}

/** A Host header naming a loopback address (with any port). */
function isLoopbackHost(host: string | undefined): boolean {
  const name = /^\[([^\]]+)\](?::\d+)?$/.exec(host ?? '')?.[1] ?? (host ?? '').replace(/:\d+$/, '');
  return isLoopback(name.toLowerCase());
}

/** 127.0.0.0/8, ::1 and localhost. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
