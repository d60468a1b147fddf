import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { localSettings } from '../../local/settings.js';
import { dlqResourceName, type QueueName, queueResourceName, topology } from '../../topology/topology.js';

/**
 * No Docker engine runs here, so the Compose stack is checked against the topology as files: every
 * bucket, queue, DLQ and notification present, and MinIO's webhook pointing at the runtime with the
 * runtime's token.
 */
const root = join(import.meta.dirname, '..', '..', 'local');
const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8')) as {
  services: Record<
    string,
    {
      image: string;
      environment?: Record<string, string>;
      depends_on?: Record<string, { condition: string }>;
      healthcheck?: unknown;
      volumes?: string[];
      profiles?: string[];
    }
  >;
};
const init = readFileSync(join(root, 'minio', 'minio-init.sh'), 'utf8');
const elasticmq = readFileSync(join(root, 'elasticmq.conf'), 'utf8');

describe('local/docker-compose.yml', () => {
  const minio = compose.services.minio!;
  const env = minio.environment!;

  it('pins MinIO, mc and ElasticMQ (≥ 1.6.16) to releases', () => {
    expect(minio.image).toMatch(/^quay\.io\/minio\/minio:RELEASE\.\d{4}-\d{2}-\d{2}T/);
    expect(compose.services['minio-init']!.image).toMatch(/^quay\.io\/minio\/mc:RELEASE\./);
    const [, major, minor, patch] = /elasticmq-native:(\d+)\.(\d+)\.(\d+)$/.exec(
      compose.services.elasticmq!.image,
    )!;
    expect(Number(major) * 1e6 + Number(minor) * 1e3 + Number(patch)).toBeGreaterThanOrEqual(1_006_016);
  });

  it("points MinIO's webhook at the runtime's /hooks/s3, with the runtime's token and a queue dir", () => {
    const settings = localSettings({});
    expect(env.MINIO_NOTIFY_WEBHOOK_ENABLE_PIPELINE).toBe('on');
    expect(env.MINIO_NOTIFY_WEBHOOK_ENDPOINT_PIPELINE).toBe(
      `http://\${WEBHOOK_HOST:-host.docker.internal}:${settings.RUNTIME_PORT}/hooks/s3`,
    );
    // The same variable feeds MinIO's token and the runtime container's WEBHOOK_TOKEN.
    expect(env.MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_PIPELINE).toMatch(/^\$\{WEBHOOK_TOKEN:\?/);
    expect(compose.services.runtime!.environment!.WEBHOOK_TOKEN).toBe(
      env.MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_PIPELINE,
    );
    expect(env.MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_PIPELINE).toMatch(/^\/data\//);
    expect(env.MINIO_ROOT_USER).toBe(settings.AWS_ACCESS_KEY_ID);
    expect(env.MINIO_ROOT_PASSWORD).toBe(settings.AWS_SECRET_ACCESS_KEY);
  });

  it('comes up in order: health checks, and init after a healthy MinIO', () => {
    expect(minio.healthcheck).toBeDefined();
    expect(compose.services.elasticmq!.healthcheck).toBeDefined();
    expect(compose.services['minio-init']!.depends_on).toEqual({ minio: { condition: 'service_healthy' } });
    expect(compose.services.runtime!.depends_on).toMatchObject({
      'minio-init': { condition: 'service_completed_successfully' },
      elasticmq: { condition: 'service_healthy' },
    });
    expect(compose.services.grafana!.volumes).toEqual(
      expect.arrayContaining([
        expect.stringContaining('monitoring/grafana/provisioning'),
        expect.stringContaining('monitoring/grafana/dashboards'),
      ]),
    );
  });

  it('creates every topology bucket', () => {
    const buckets = /for bucket in ([a-z ]+); do/.exec(init)![1]!.trim().split(/\s+/);
    expect(buckets.sort()).toEqual([...topology.buckets].sort());
  });

  it('attaches exactly the topology notifications (bucket, event, prefix, suffix)', () => {
    const events = [
      ...init.matchAll(
        /^mc event add local\/(\S+) arn:minio:sqs::PIPELINE:webhook --event put(?: --prefix (\S+))?(?: --suffix (\S+))? --ignore-existing$/gm,
      ),
    ].map((m) => ({ bucket: m[1], prefix: m[2], suffix: m[3] }));
    expect(events).toEqual(
      topology.notifications.map((n) => ({
        bucket: n.bucket,
        prefix: (n.filter as { prefix?: string }).prefix,
        suffix: (n.filter as { suffix?: string }).suffix,
      })),
    );
    // `--event put` is MinIO's s3:ObjectCreated:*; the topology routes nothing else.
    expect(new Set(topology.notifications.flatMap((n) => n.events))).toEqual(new Set(['s3:ObjectCreated:*']));
  });

  it('declares every queue and DLQ in ElasticMQ with the topology settings', () => {
    for (const [name, spec] of Object.entries(topology.queues) as [
      QueueName,
      (typeof topology.queues)[QueueName],
    ][]) {
      const fifo = spec.fifo ? ', fifo = true' : '';
      expect(elasticmq).toContain(`"${dlqResourceName(name)}" { messageRetentionPeriod = 14 days${fifo} }`);
      expect(elasticmq).toContain(
        `"${queueResourceName(name)}" { defaultVisibilityTimeout = ${spec.visibilityTimeoutSeconds} seconds${fifo}, deadLettersQueue { name = "${dlqResourceName(name)}", maxReceiveCount = ${spec.maxReceiveCount} } }`,
      );
    }
    expect([...elasticmq.matchAll(/^ {2}"([^"]+)" \{/gm)]).toHaveLength(
      2 * Object.keys(topology.queues).length,
    );
  });

  it('Prometheus in Compose scrapes the runtime on the host', () => {
    const prom = parse(readFileSync(join(root, 'monitoring', 'prometheus.docker.yml'), 'utf8')) as {
      scrape_configs: { static_configs: { targets: string[] }[] }[];
    };
    expect(prom.scrape_configs[0]!.static_configs[0]!.targets).toEqual([
      `host.docker.internal:${localSettings({}).RUNTIME_PORT}`,
    ]);
  });
});
