import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { type Action, type ActionContext, integerIn, parseInput, queueByArn } from './action-context.js';
import { invalidParameter, type SqsError, sqsError } from './errors.js';
import type { Output } from './protocol.js';
import { queueSettings } from './queue-attributes.js';
import type { MoveTaskRow, QueueRow } from './queue-store.js';

/**
 * Dead-letter queue redrive: StartMessageMoveTask moves the messages available in a dead-letter queue
 * back to the queue each was dead-lettered from, or all to a given destination. Here a task runs to the
 * end within the request (one transaction), so ListMessageMoveTasks shows it COMPLETED at once — or
 * FAILED, when some message had no source queue to go back to (it was sent to the dead-letter queue
 * directly, or its source was deleted); those stay where they are. `MaxNumberOfMessagesPerSecond` is
 * validated and reported, not enforced.
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-configure-dead-letter-queue-redrive.html
 */
function noSuchResource(parameter: string): SqsError {
  return sqsError(
    'ResourceNotFoundException',
    `The resource that you specified for the ${parameter} parameter doesn't exist.`,
  );
}

/**
 * A move task's source, which must be a dead-letter queue (some queue's redrive policy names it), and
 * its destination if given, which must be of the same type.
 */
function taskQueues(
  context: ActionContext,
  sourceArn: string,
  destinationArn: string | undefined,
): { source: QueueRow; destination: QueueRow | undefined } {
  const source = queueByArn(context, sourceArn);
  if (!source) throw noSuchResource('SourceArn');
  const isDeadLetterQueue = context.store
    .queues()
    .some((q) => queueSettings(q.attributes).redrivePolicy?.deadLetterTargetArn === sourceArn);
  if (!isDeadLetterQueue) {
    throw invalidParameter('SourceArn', sourceArn, 'Source queue must be configured as a Dead Letter Queue.');
  }
  if (destinationArn === undefined) return { source, destination: undefined };
  const destination = queueByArn(context, destinationArn);
  if (!destination) throw noSuchResource('DestinationArn');
  if (queueSettings(destination.attributes).fifo !== queueSettings(source.attributes).fifo) {
    throw invalidParameter(
      'DestinationArn',
      destinationArn,
      'Destination queue must be same type of queue as the source.',
    );
  }
  return { source, destination };
}

const startMessageMoveTaskRequest = z.object({
  SourceArn: z.string(),
  DestinationArn: z.string().optional(),
  MaxNumberOfMessagesPerSecond: integerIn(1, 500).optional(),
});

const StartMessageMoveTask: Action = (input, context) => {
  const request = parseInput(startMessageMoveTaskRequest, input);
  const { store, longPolls } = context;
  const now = Date.now();
  const { handle, destinations } = store.transaction(() => {
    const { source, destination } = taskQueues(context, request.SourceArn, request.DestinationArn);
    const fifo = queueSettings(source.attributes).fifo;
    const available = store.visibleMessages(source.id, now, 0, -1);
    const destinations = new Set<number>();
    let moved = 0;
    for (const m of available) {
      const target =
        destination ??
        (m.deadLetterSourceArn === null ? undefined : queueByArn(context, m.deadLetterSourceArn));
      // (A source deleted since, or re-created as the other type, cannot take it back.)
      if (!target || queueSettings(target.attributes).fifo !== fifo) continue;
      store.moveMessage(
        m.seq,
        {
          queueId: target.id,
          sequenceNumber: fifo ? store.nextSequenceNumber(target.id) : null,
          deadLetterSourceArn: null,
          resetReceives: true,
        },
        now,
      );
      destinations.add(target.id);
      moved++;
    }
    const stranded = available.length - moved;
    const handle = randomUUID();
    store.insertMoveTask({
      handle,
      sourceArn: request.SourceArn,
      destinationArn: request.DestinationArn ?? null,
      maxPerSecond: request.MaxNumberOfMessagesPerSecond ?? null,
      status: stranded === 0 ? 'COMPLETED' : 'FAILED',
      moved,
      toMove: available.length,
      failureReason:
        stranded === 0
          ? null
          : `${stranded} message(s) have no source queue to move back to; they stay in ${source.name}.`,
      startedAt: now,
    });
    return { handle, destinations };
  });
  for (const id of destinations) longPolls.notify(id);
  return { TaskHandle: handle };
};

function taskOutput(task: MoveTaskRow): Output {
  return {
    // SQS gives the handle of running tasks only; these never are.
    Status: task.status,
    SourceArn: task.sourceArn,
    DestinationArn: task.destinationArn ?? undefined,
    MaxNumberOfMessagesPerSecond: task.maxPerSecond ?? undefined,
    ApproximateNumberOfMessagesMoved: task.moved,
    ApproximateNumberOfMessagesToMove: task.toMove,
    FailureReason: task.failureReason ?? undefined,
    StartedTimestamp: task.startedAt,
  };
}

const listMessageMoveTasksRequest = z.object({
  SourceArn: z.string(),
  MaxResults: integerIn(1, 10).optional(),
});

/** The most recent move tasks of a dead-letter queue (`MaxResults` 1–10, default 1), newest first. */
const ListMessageMoveTasks: Action = (input, context) => {
  const request = parseInput(listMessageMoveTasksRequest, input);
  if (!queueByArn(context, request.SourceArn)) throw noSuchResource('SourceArn');
  return { Results: context.store.moveTasks(request.SourceArn, request.MaxResults ?? 1).map(taskOutput) };
};

const cancelMessageMoveTaskRequest = z.object({ TaskHandle: z.string() });

/** Only a running task can be cancelled, and tasks here finish within StartMessageMoveTask. */
const CancelMessageMoveTask: Action = (input, context) => {
  const request = parseInput(cancelMessageMoveTaskRequest, input);
  const task = context.store.moveTask(request.TaskHandle);
  throw sqsError(
    'ResourceNotFoundException',
    task
      ? `The message move task is not running (it is ${task.status}).`
      : 'The message move task does not exist.',
  );
};

/** The dead-letter queue redrive actions. */
export const moveTaskActions: Record<string, Action> = {
  StartMessageMoveTask,
  ListMessageMoveTasks,
  CancelMessageMoveTask,
};
