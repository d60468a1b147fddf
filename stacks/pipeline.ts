/**
 * Every AWS resource of the pipeline, built from the shared topology (`topology/topology.ts`) — the
 * declaration the local runtime runs — so local and deployed cannot drift. `test/unit/stacks.test.ts`
 * runs this against recording fakes of the `sst` globals and compares it with the topology.
 */
import { join } from 'node:path';
import { loadFactories, secretNames } from '../functions/contracts/factories.js';
import { LAKE_TABLES, type LakeTable, PROJECTION_FROM_MONTH } from '../functions/contracts/lake-tables.js';
import {
  type BucketName,
  type FunctionName,
  type FunctionSpec,
  linkName,
  type QueueName,
  retentionRules,
  topology,
  warehouseRetentionDays,
} from '../topology/topology.js';

/** Dependencies with native code are installed in the function package, not bundled. */
const NATIVE = ['@duckdb/node-api'];
/** Where `copyFiles` puts the config folder and the built dashboard in the function package. */
const CONFIG_IN_LAMBDA = '/var/task/config';
const DASHBOARD_IN_LAMBDA = '/var/task/dashboard';

/**
 * CloudWatch alarms to one SNS topic, whose subscribers are set at deploy (`ALARM_EMAILS`, comma-separated
 * addresses; each confirms by mail): a message in a DLQ, a queue's oldest message older than the
 * topology's threshold, any error or throttle of a function. The same conditions as the local Prometheus
 * rules (`local/monitoring/alerts.yml`).
 */
function alarms(
  queues: Record<QueueName, sst.aws.Queue>,
  dlqs: Record<QueueName, sst.aws.Queue>,
  functionNames: Record<FunctionName, $util.Output<string>>,
) {
  const topic = new sst.aws.SnsTopic('Alarms');
  const emails = (process.env.ALARM_EMAILS ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  for (const [i, endpoint] of emails.entries()) {
    new aws.sns.TopicSubscription(`AlarmsEmail${i}`, { topic: topic.arn, protocol: 'email', endpoint });
  }
  const common = {
    period: 60,
    evaluationPeriods: 1,
    comparisonOperator: 'GreaterThanThreshold',
    treatMissingData: 'notBreaching',
    alarmActions: [topic.arn],
    okActions: [topic.arn],
  };
  for (const [name, seconds] of Object.entries(topology.alarms.oldestMessageSeconds) as [
    QueueName,
    number,
  ][]) {
    new aws.cloudwatch.MetricAlarm(`${linkName('dlq', name)}NotEmpty`, {
      ...common,
      alarmDescription: `A message in the ${name} dead-letter queue: telemetry-pipeline dlq list`,
      namespace: 'AWS/SQS',
      metricName: 'ApproximateNumberOfMessagesVisible',
      dimensions: { QueueName: dlqs[name].nodes.queue.name },
      statistic: 'Maximum',
      threshold: 0,
    });
    new aws.cloudwatch.MetricAlarm(`${linkName('queue', name)}Stuck`, {
      ...common,
      alarmDescription: `The oldest message in the ${name} queue is older than ${seconds} s`,
      namespace: 'AWS/SQS',
      metricName: 'ApproximateAgeOfOldestMessage',
      dimensions: { QueueName: queues[name].nodes.queue.name },
      statistic: 'Maximum',
      threshold: seconds,
    });
  }
  for (const [name, fn] of Object.entries(functionNames) as [FunctionName, $util.Output<string>][]) {
    for (const metricName of ['Errors', 'Throttles'] as const) {
      new aws.cloudwatch.MetricAlarm(`${linkName('bucket', name)}${metricName}`, {
        ...common,
        alarmDescription: `${metricName} of the ${name} function`,
        namespace: 'AWS/Lambda',
        metricName,
        dimensions: { FunctionName: fn },
        statistic: 'Sum',
        threshold: 0,
      });
    }
  }
}

const SERDE: Record<LakeTable['format'], { input: string; output: string; library: string }> = {
  parquet: {
    input: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
    output: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
    library: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe',
  },
  // Manifests are pretty-printed JSON: a record spans lines, which the line-based JSON SerDes (OpenX,
  // Hive's) cannot read. Ion is a superset of JSON and its SerDe reads a record across lines; it matches
  // fields to columns case-insensitively (`createdAt` → `createdat`).
  json: {
    input: 'com.amazon.ionhiveserde.formats.IonInputFormat',
    output: 'com.amazon.ionhiveserde.formats.IonOutputFormat',
    library: 'com.amazon.ionhiveserde.IonHiveSerDe',
  },
};

/**
 * The lake as Glue tables for Athena (and Spark, Trino), one per `LAKE_TABLES` entry, in a database of
 * the stage's own. Partition projection on `factory` (the factories in factories.yaml) and `month` (from
 * 2020-01 to now): no crawler, no `MSCK REPAIR`; a new month is queryable as soon as its objects exist.
 * Objects of releases before the month layout (`date=` partitions) are outside the projection.
 */
function lakeCatalog(lakeBucket: $util.Output<string> | string, factories: readonly string[]) {
  const database = new aws.glue.CatalogDatabase('LakeDatabase', {
    name: `telemetry_pipeline_${$app.stage.replace(/[^a-z0-9]/gi, '_').toLowerCase()}`,
    description: 'telemetry-pipeline lake: enriched and normalized readings and events, rejects, manifests',
  });
  for (const table of LAKE_TABLES) {
    const serde = SERDE[table.format];
    const location = $interpolate`s3://${lakeBucket}/${table.prefix}`;
    const template = table.partitions.map((p) => `${p}=\${${p}}`).join('/');
    new aws.glue.CatalogTable(
      `Lake${table.name.replace(/(^|_)([a-z])/g, (_m, _s, c: string) => c.toUpperCase())}`,
      {
        databaseName: database.name,
        name: table.name,
        tableType: 'EXTERNAL_TABLE',
        parameters: {
          classification: table.format,
          EXTERNAL: 'TRUE',
          'projection.enabled': 'true',
          'projection.factory.type': 'enum',
          'projection.factory.values': factories.join(','),
          ...(table.partitions.includes('month')
            ? {
                'projection.month.type': 'date',
                'projection.month.format': 'yyyy-MM',
                'projection.month.range': `${PROJECTION_FROM_MONTH},NOW`,
                'projection.month.interval': '1',
                'projection.month.interval.unit': 'MONTHS',
              }
            : {}),
          'storage.location.template': $interpolate`s3://${lakeBucket}/${table.prefix}${template}/`,
        },
        partitionKeys: table.partitions.map((name) => ({ name, type: 'string' })),
        storageDescriptor: {
          location,
          inputFormat: serde.input,
          outputFormat: serde.output,
          serDeInfo: { serializationLibrary: serde.library },
          columns: table.columns.map((c) => ({ name: c.name, type: c.type })),
        },
      },
    );
  }
  return database.name;
}

export function pipeline() {
  // Retention: the topology's days, overridden per stage with RETENTION_DAYS at deploy time.
  const retention = retentionRules(process.env.RETENTION_DAYS);
  const warehouseDays = warehouseRetentionDays(process.env.WAREHOUSE_RETENTION_DAYS);
  const buckets = Object.fromEntries(
    topology.buckets.map((name) => [
      name,
      new sst.aws.Bucket(linkName('bucket', name), {
        lifecycle: retention
          .filter((r) => r.bucket === name)
          .map((r) => ({
            id: `expire-${r.prefix.replace(/[^a-z0-9]+/gi, '-').replace(/-$/, '') || 'all'}`,
            ...(r.prefix ? { prefix: r.prefix } : {}),
            expiresIn: `${r.days} days` as const,
          })),
      }),
    ]),
  ) as Record<BucketName, sst.aws.Bucket>;

  const queues = {} as Record<QueueName, sst.aws.Queue>;
  const dlqs = {} as Record<QueueName, sst.aws.Queue>;
  for (const [name, spec] of Object.entries(topology.queues) as [
    QueueName,
    (typeof topology.queues)[QueueName],
  ][]) {
    dlqs[name] = new sst.aws.Queue(linkName('dlq', name), { fifo: spec.fifo });
    queues[name] = new sst.aws.Queue(linkName('queue', name), {
      fifo: spec.fifo,
      visibilityTimeout: `${spec.visibilityTimeoutSeconds} seconds`,
      dlq: { queue: dlqs[name].arn, retry: spec.maxReceiveCount },
    });
  }

  // One notify() per bucket: S3 keeps a single notification configuration per bucket.
  for (const bucket of topology.buckets) {
    const routes = topology.notifications.filter((n) => n.bucket === bucket);
    if (routes.length === 0) continue;
    buckets[bucket].notify({
      notifications: routes.map((route, i) => {
        const filter = route.filter as { prefix?: string; suffix?: string };
        return {
          name: `${linkName('bucket', bucket)}To${linkName('queue', route.queue)}${i}`,
          queue: queues[route.queue],
          events: [...route.events] as 's3:ObjectCreated:*'[],
          ...(filter.prefix ? { filterPrefix: filter.prefix } : {}),
          ...(filter.suffix ? { filterSuffix: filter.suffix } : {}),
        };
      }),
    });
  }

  // Source credentials: one SST secret per name factories.yaml refers to, linked to fetch only.
  const factoriesConfig = loadFactories(join(process.cwd(), 'config'));
  const secrets = secretNames(factoriesConfig).map((name) => new sst.Secret(name));
  const lakeDatabase = lakeCatalog(buckets.lake.name, [...factoriesConfig.factories.keys(), 'unassigned']);

  // A function that shows queue depths (the api's overview) may read their attributes, no more.
  const watching = (spec: FunctionSpec) => {
    const watched = spec.watches ?? [];
    if (watched.length === 0) return {};
    return {
      permissions: [
        {
          actions: ['sqs:GetQueueAttributes'],
          resources: watched.flatMap((q) => [queues[q].arn, dlqs[q].arn]),
        },
      ],
      environment: Object.fromEntries(
        watched.flatMap((q) => [
          [`QUEUE_URL_${q.toUpperCase()}`, queues[q].url],
          [`DLQ_URL_${q.toUpperCase()}`, dlqs[q].url],
        ]),
      ),
    };
  };

  /**
   * A function fed by a standard queue: its cap goes on the event source mapping (maximum concurrency),
   * where Lambda polls no more than that, rather than a reservation the poller would overrun into
   * throttles (topology: `maxConcurrency`).
   */
  const pollerCap = (spec: FunctionSpec) =>
    'queue' in spec.trigger && !topology.queues[spec.trigger.queue].fifo
      ? Math.max(2, spec.maxConcurrency)
      : undefined;

  const functionArgs = (name: FunctionName, spec: FunctionSpec) => {
    const watch = watching(spec);
    const page = 'url' in spec.trigger;
    return {
      handler: `functions/${spec.handler}.handler`,
      runtime: 'nodejs22.x' as const,
      architecture: 'arm64' as const,
      memory: `${spec.memoryMB} MB` as const,
      timeout: `${spec.timeoutSeconds} seconds` as const,
      storage: `${spec.storageMB} MB` as const,
      link: [
        ...spec.links.buckets.map((b) => buckets[b]),
        ...spec.links.queues.map((q) => queues[q]),
        ...(name === 'fetch' ? secrets : []),
      ],
      // The api function serves the dashboard: `npm run build` has written dashboard/dist.
      copyFiles: [
        { from: 'config', to: 'config' },
        ...(page ? [{ from: 'dashboard/dist', to: 'dashboard' }] : []),
      ],
      environment: {
        PIPELINE_CONFIG: CONFIG_IN_LAMBDA,
        // The metrics' CloudWatch namespace is the stage's own (functions/core/emf.ts).
        PIPELINE_STAGE: $app.stage,
        PUSHGATEWAY_URL: process.env.PUSHGATEWAY_URL ?? '',
        // Days of data the warehouse keeps, per stage (unset: all); the writer and the reconciler read it.
        ...(warehouseDays !== undefined && (name === 'warehouse' || name === 'reconcile')
          ? { WAREHOUSE_RETENTION_DAYS: String(warehouseDays) }
          : {}),
        ...(page ? { DASHBOARD_DIR: DASHBOARD_IN_LAMBDA } : {}),
        ...watch.environment,
      },
      ...(watch.permissions ? { permissions: watch.permissions } : {}),
      // A standard queue's subscriber is capped at its event source mapping instead (`pollerCap`).
      ...(pollerCap(spec) ? {} : { concurrency: { reserved: spec.maxConcurrency } }),
      nodejs: { install: NATIVE },
    };
  };

  // The query API's bearer token.
  const apiToken = new sst.Secret('API_TOKEN');
  let apiUrl: $util.Output<string> | undefined;
  /** Each function's deployed name, for its alarms. */
  const functionNames = {} as Record<FunctionName, $util.Output<string>>;

  for (const [name, spec] of Object.entries(topology.functions) as [FunctionName, FunctionSpec][]) {
    const trigger = spec.trigger;
    if ('url' in trigger) {
      const args = functionArgs(name, spec);
      const api = new sst.aws.Function(linkName('bucket', name), {
        ...args,
        link: [...args.link, apiToken],
        url: true,
      });
      apiUrl = api.url;
      functionNames[name] = api.name;
    } else if ('schedule' in trigger) {
      const cron = new sst.aws.CronV2(linkName('bucket', name), {
        schedule: trigger.schedule as `rate(${string})`,
        function: functionArgs(name, spec),
      });
      functionNames[name] = cron.nodes.function.apply((f) => f.name);
    } else {
      const subscriber = queues[trigger.queue].subscribe(functionArgs(name, spec), {
        batch: {
          size: trigger.batchSize,
          ...(trigger.batchWindowSeconds > 0
            ? { window: `${trigger.batchWindowSeconds} seconds` as const }
            : {}),
          partialResponses: true,
        },
        ...(pollerCap(spec)
          ? { transform: { eventSourceMapping: { scalingConfig: { maximumConcurrency: pollerCap(spec) } } } }
          : {}),
      });
      functionNames[name] = subscriber.nodes.function.apply((f) => f.name);
    }
  }

  alarms(queues, dlqs, functionNames);

  // Written by `sst deploy` to .sst/outputs.json: the CLI's `--stage` reads its names and URLs there.
  const urls = (of: Record<QueueName, sst.aws.Queue>) =>
    Object.fromEntries(Object.entries(of).map(([name, q]) => [name, q.url]));
  return {
    stage: $app.stage,
    region: aws.getRegionOutput().name,
    rawBucket: buckets.raw.name,
    lakeBucket: buckets.lake.name,
    warehouseBucket: buckets.warehouse.name,
    lakeDatabase,
    apiUrl,
    // What the stage's writer keeps (`status --stage` judges what is missing from the warehouse by it).
    warehouseRetentionDays: warehouseDays === undefined ? '' : String(warehouseDays),
    queueUrls: urls(queues),
    dlqUrls: urls(dlqs),
  };
}
