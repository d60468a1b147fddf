import { Cron } from 'croner';

/**
 * EventBridge Scheduler expressions (`rate(5 minutes)`, `cron(0/15 * * * ? *)`) as croner patterns, so
 * the local runtime fires the schedule the topology declares for the cloud.
 * https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html
 */
export function schedulerToCron(expression: string): string {
  const rate = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/.exec(expression);
  if (rate) {
    const n = Number(rate[1]);
    if (rate[2]!.startsWith('minute')) return n === 1 ? '* * * * *' : `*/${n} * * * *`;
    if (rate[2]!.startsWith('hour')) return n === 1 ? '0 * * * *' : `0 */${n} * * *`;
    return n === 1 ? '0 0 * * *' : `0 0 */${n} * *`;
  }
  const cron = /^cron\((.+)\)$/.exec(expression);
  if (cron) {
    const fields = cron[1]!.trim().split(/\s+/);
    if (fields.length !== 6) throw new Error(`cron() takes 6 fields: ${expression}`);
    // AWS: minutes hours day-of-month month day-of-week year; `?` means "any".
    return fields
      .slice(0, 5)
      .map((f) => (f === '?' ? '*' : f.replace(/^(\d+)\//, '$1-59/')))
      .join(' ');
  }
  throw new Error(`not a scheduler expression: ${expression}`);
}

/** Starts a croner job for an expression; returns a stop function. */
export function startSchedule(expression: string, run: (at: Date) => void): () => void {
  const job = new Cron(schedulerToCron(expression), { protect: true }, () => run(new Date()));
  return () => job.stop();
}

/**
 * The event EventBridge Scheduler sends to a Lambda target; `detail` is the target's input (the
 * schedule function reads `skipFactories` from it).
 */
export function scheduledEvent(
  at: Date,
  name: string,
  detail: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    version: '0',
    id: crypto.randomUUID(),
    'detail-type': 'Scheduled Event',
    source: 'aws.scheduler',
    account: '000000000000',
    time: new Date(Math.floor(at.getTime() / 60_000) * 60_000).toISOString().replace('.000Z', 'Z'),
    region: 'us-east-1',
    resources: [`arn:aws:scheduler:us-east-1:000000000000:schedule/default/${name}`],
    detail,
  };
}
