import { queueDoesNotExist, sqsError } from './errors.js';

/**
 * Queue URLs and ARNs of this emulator: `http://<host>:<port>/<accountId>/<name>` and
 * `arn:aws:sqs:<region>:<accountId>:<name>`. A request may name a queue by a URL of any host (clients
 * build URLs from their own endpoint, which need not be this one's spelling): only the account and the
 * name count.
 */
export class QueueNames {
  constructor(
    readonly baseUrl: string,
    readonly region: string,
    readonly accountId: string,
  ) {}

  url(name: string): string {
    return `${this.baseUrl}/${this.accountId}/${name}`;
  }

  arn(name: string): string {
    return `arn:aws:sqs:${this.region}:${this.accountId}:${name}`;
  }

  /** The queue name in a queue URL (or in the path of a Query request posted to the queue's URL). */
  nameFromUrl(queueUrl: string): string {
    let path: string;
    try {
      path = queueUrl.startsWith('/') ? queueUrl : new URL(queueUrl).pathname;
    } catch {
      throw sqsError('InvalidAddress', `The address ${queueUrl} is not valid for this endpoint.`);
    }
    const [account, name, ...rest] = path.split('/').filter(Boolean);
    if (name === undefined || rest.length > 0) {
      throw sqsError('InvalidAddress', `The address ${queueUrl} is not valid for this endpoint.`);
    }
    if (account !== this.accountId) throw queueDoesNotExist();
    return name;
  }

  /** The queue name in an ARN of this region and account, if it is one. */
  nameFromArn(arn: string): string | undefined {
    const [prefix, partition, service, region, account, name, ...rest] = arn.split(':');
    const ours =
      prefix === 'arn' &&
      partition !== undefined &&
      service === 'sqs' &&
      region === this.region &&
      account === this.accountId;
    return ours && name && rest.length === 0 ? name : undefined;
  }
}
