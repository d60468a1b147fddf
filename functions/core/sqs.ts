import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { runtimeConfig } from './config.js';
import { deduplicationId, WAREHOUSE_GROUP, type WarehouseMessage } from './warehouse-message.js';

let client: SQSClient | undefined;

export function sqs(): SQSClient {
  client ??= new SQSClient({
    region: runtimeConfig.region,
    ...(runtimeConfig.sqsEndpoint ? { endpoint: runtimeConfig.sqsEndpoint } : {}),
  });
  return client;
}

/** Sends one message to the warehouse FIFO queue (single group ⇒ one writer, in order). */
export async function sendToWarehouse(queueUrl: string, message: WarehouseMessage): Promise<void> {
  await sqs().send(
    new SendMessageCommand({
      QueueUrl: queueUrl,
      MessageBody: JSON.stringify(message),
      MessageGroupId: WAREHOUSE_GROUP,
      MessageDeduplicationId: deduplicationId(message.key, message.eTag),
    }),
  );
}
