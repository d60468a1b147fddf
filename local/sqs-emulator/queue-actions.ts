import { z } from 'zod';
import {
  type Action,
  type ActionContext,
  integerIn,
  parseInput,
  queueByArn,
  queueByUrl,
} from './action-context.js';
import { invalidParameter, queueDoesNotExist, sqsError } from './errors.js';
import { paginate } from './pagination.js';
import {
  applyAttributes,
  canonicalAttributes,
  defaultAttributes,
  differingAttribute,
  type QueueAttributes,
  queueSettings,
  READABLE_ATTRIBUTES,
  requestsFifo,
} from './queue-attributes.js';
import { dropExpiredMessages } from './retention.js';
import { validateQueueName } from './validation.js';

const attributeMap = z.record(z.string(), z.string());

/**
 * A redrive policy must name an existing dead-letter queue of the same type (FIFO for FIFO) that allows
 * this queue as a source (its `RedriveAllowPolicy`).
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html
 */
function checkRedrivePolicy(context: ActionContext, name: string, attributes: QueueAttributes): void {
  const policy = queueSettings(attributes).redrivePolicy;
  if (!policy) return;
  const invalid = (reason: string) => invalidParameter('RedrivePolicy', attributes.RedrivePolicy, reason);
  const dlq = queueByArn(context, policy.deadLetterTargetArn);
  if (!dlq) throw invalid('Dead letter target does not exist.');
  const dlqSettings = queueSettings(dlq.attributes);
  if (dlqSettings.fifo !== queueSettings(attributes).fifo) {
    throw invalid('Dead-letter queue must be same type of queue as the source.');
  }
  const allow = dlqSettings.redriveAllowPolicy;
  const source = context.names.arn(name);
  if (
    allow?.redrivePermission === 'denyAll' ||
    (allow?.redrivePermission === 'byQueue' && !allow.sourceQueueArns?.includes(source))
  ) {
    throw invalid('Dead-letter queue does not allow this queue as a source (RedriveAllowPolicy).');
  }
}

const createQueueRequest = z.object({ QueueName: z.string(), Attributes: attributeMap.optional() });

/**
 * CreateQueue is idempotent: for an existing queue it returns the URL when the given attributes equal
 * the queue's, and `QueueAlreadyExists` otherwise.
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html
 */
const CreateQueue: Action = (input, context) => {
  const request = parseInput(createQueueRequest, input);
  const given = request.Attributes ?? {};
  const fifo = requestsFifo(given);
  validateQueueName(request.QueueName, fifo);
  const changes = canonicalAttributes(given, fifo, true);
  return context.store.transaction(() => {
    const existing = context.store.queueByName(request.QueueName);
    if (existing) {
      const differing =
        queueSettings(existing.attributes).fifo !== fifo
          ? 'FifoQueue'
          : differingAttribute(existing.attributes, changes);
      if (differing !== undefined) {
        throw sqsError(
          'QueueNameExists',
          `A queue already exists with the same name and a different value for attribute ${differing}`,
        );
      }
    } else {
      const attributes = applyAttributes(defaultAttributes(fifo), changes);
      checkRedrivePolicy(context, request.QueueName, attributes);
      context.store.createQueue(request.QueueName, attributes, Math.floor(Date.now() / 1000));
    }
    return { QueueUrl: context.names.url(request.QueueName) };
  });
};

const getQueueUrlRequest = z.object({ QueueName: z.string(), QueueOwnerAWSAccountId: z.string().optional() });

const GetQueueUrl: Action = (input, context) => {
  const request = parseInput(getQueueUrlRequest, input);
  const owner = request.QueueOwnerAWSAccountId ?? context.names.accountId;
  if (owner !== context.names.accountId || !context.store.queueByName(request.QueueName)) {
    throw queueDoesNotExist();
  }
  return { QueueUrl: context.names.url(request.QueueName) };
};

const listQueuesRequest = z.object({
  QueueNamePrefix: z.string().optional(),
  MaxResults: integerIn(1, 1000).optional(),
  NextToken: z.string().optional(),
});

const ListQueues: Action = (input, context) => {
  const request = parseInput(listQueuesRequest, input);
  const names = context.store
    .queues()
    .map((q) => q.name)
    .filter((name) => name.startsWith(request.QueueNamePrefix ?? ''));
  const { page, nextToken } = paginate(names, request.MaxResults, request.NextToken);
  return {
    QueueUrls: page.length > 0 ? page.map((name) => context.names.url(name)) : undefined,
    NextToken: nextToken,
  };
};

const deleteQueueRequest = z.object({ QueueUrl: z.string() });

const DeleteQueue: Action = (input, context) => {
  const request = parseInput(deleteQueueRequest, input);
  const queue = queueByUrl(context, request.QueueUrl);
  context.store.deleteQueue(queue.id);
  // Long polls on it look again, and find it gone.
  context.longPolls.notify(queue.id);
  return undefined;
};

const getQueueAttributesRequest = z.object({
  QueueUrl: z.string(),
  AttributeNames: z.array(z.string()).optional(),
});

/** GetQueueAttributes: the stored attributes plus the computed ones (message counts, timestamps, ARN). */
const GetQueueAttributes: Action = (input, context) => {
  const request = parseInput(getQueueAttributesRequest, input);
  const wanted = request.AttributeNames ?? [];
  const unknown = wanted.find((name) => name !== 'All' && !READABLE_ATTRIBUTES.has(name));
  if (unknown !== undefined) throw sqsError('InvalidAttributeName', `Unknown Attribute ${unknown}.`);
  return context.store.transaction(() => {
    const queue = queueByUrl(context, request.QueueUrl);
    if (wanted.length === 0) return {};
    const now = Date.now();
    dropExpiredMessages(context.store, queue, queueSettings(queue.attributes), now);
    const counts = context.store.counts(queue.id, now);
    const all: QueueAttributes = {
      ...queue.attributes,
      ApproximateNumberOfMessages: String(counts.visible),
      ApproximateNumberOfMessagesNotVisible: String(counts.inFlight),
      ApproximateNumberOfMessagesDelayed: String(counts.delayed),
      CreatedTimestamp: String(queue.createdAt),
      LastModifiedTimestamp: String(queue.modifiedAt),
      QueueArn: context.names.arn(queue.name),
    };
    const attributes = wanted.includes('All')
      ? all
      : Object.fromEntries(Object.entries(all).filter(([name]) => wanted.includes(name)));
    return Object.keys(attributes).length > 0 ? { Attributes: attributes } : {};
  });
};

const setQueueAttributesRequest = z.object({ QueueUrl: z.string(), Attributes: attributeMap });

const SetQueueAttributes: Action = (input, context) => {
  const request = parseInput(setQueueAttributesRequest, input);
  context.store.transaction(() => {
    const queue = queueByUrl(context, request.QueueUrl);
    const fifo = queueSettings(queue.attributes).fifo;
    const attributes = applyAttributes(
      queue.attributes,
      canonicalAttributes(request.Attributes, fifo, false),
    );
    checkRedrivePolicy(context, queue.name, attributes);
    context.store.setQueueAttributes(queue.id, attributes, Math.floor(Date.now() / 1000));
  });
  return undefined;
};

const purgeQueueRequest = z.object({ QueueUrl: z.string() });

/**
 * PurgeQueue deletes every message at once. (SQS allows one purge per 60 seconds and may take that
 * long; locally neither limit helps anyone.)
 */
const PurgeQueue: Action = (input, context) => {
  const request = parseInput(purgeQueueRequest, input);
  context.store.purge(queueByUrl(context, request.QueueUrl).id);
  return undefined;
};

const listDeadLetterSourceQueuesRequest = z.object({
  QueueUrl: z.string(),
  MaxResults: integerIn(1, 1000).optional(),
  NextToken: z.string().optional(),
});

/** The queues whose redrive policy names this queue as their dead-letter queue. */
const ListDeadLetterSourceQueues: Action = (input, context) => {
  const request = parseInput(listDeadLetterSourceQueuesRequest, input);
  const arn = context.names.arn(queueByUrl(context, request.QueueUrl).name);
  const sources = context.store
    .queues()
    .filter((q) => queueSettings(q.attributes).redrivePolicy?.deadLetterTargetArn === arn)
    .map((q) => q.name);
  const { page, nextToken } = paginate(sources, request.MaxResults, request.NextToken);
  return { queueUrls: page.map((name) => context.names.url(name)), NextToken: nextToken };
};

/** The queue management actions. */
export const queueActions: Record<string, Action> = {
  CreateQueue,
  GetQueueUrl,
  ListQueues,
  DeleteQueue,
  GetQueueAttributes,
  SetQueueAttributes,
  PurgeQueue,
  ListDeadLetterSourceQueues,
};
