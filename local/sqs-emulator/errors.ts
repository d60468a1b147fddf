/**
 * SQS errors as both protocols report them. The JSON protocol names the error by its Smithy shape
 * (`__type`, e.g. `QueueDoesNotExist`) and repeats the Query protocol's code in the
 * `x-amzn-query-error` header (e.g. `AWS.SimpleQueueService.NonExistentQueue`), which the SDK (query
 * compatible) uses to pick the exception class. Shapes, codes and statuses are those of the service
 * model in `@aws-sdk/client-sqs`; errors the model does not list (`InvalidParameterValue`,
 * `MissingParameter`, `InvalidAction`) are the common ones of
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/CommonErrors.html
 */
const CATALOGUE = {
  BatchEntryIdsNotDistinct: { code: 'AWS.SimpleQueueService.BatchEntryIdsNotDistinct', status: 400 },
  BatchRequestTooLong: { code: 'AWS.SimpleQueueService.BatchRequestTooLong', status: 400 },
  EmptyBatchRequest: { code: 'AWS.SimpleQueueService.EmptyBatchRequest', status: 400 },
  InternalError: { code: 'InternalError', status: 500 },
  InvalidAction: { code: 'InvalidAction', status: 400 },
  InvalidAddress: { code: 'InvalidAddress', status: 404 },
  InvalidAttributeName: { code: 'InvalidAttributeName', status: 400 },
  InvalidAttributeValue: { code: 'InvalidAttributeValue', status: 400 },
  InvalidBatchEntryId: { code: 'AWS.SimpleQueueService.InvalidBatchEntryId', status: 400 },
  InvalidMessageContents: { code: 'InvalidMessageContents', status: 400 },
  InvalidParameterValue: { code: 'InvalidParameterValue', status: 400 },
  MessageNotInflight: { code: 'AWS.SimpleQueueService.MessageNotInflight', status: 400 },
  MissingParameter: { code: 'MissingParameter', status: 400 },
  QueueDoesNotExist: { code: 'AWS.SimpleQueueService.NonExistentQueue', status: 400 },
  QueueNameExists: { code: 'QueueAlreadyExists', status: 400 },
  ReceiptHandleIsInvalid: { code: 'ReceiptHandleIsInvalid', status: 404 },
  ResourceNotFoundException: { code: 'ResourceNotFoundException', status: 404 },
  TooManyEntriesInBatchRequest: { code: 'AWS.SimpleQueueService.TooManyEntriesInBatchRequest', status: 400 },
} as const;

/** The errors this emulator answers with, by JSON shape name. */
export type SqsErrorType = keyof typeof CATALOGUE;

/** An error answered to the client: JSON shape name, Query code, HTTP status and message. */
export class SqsError extends Error {
  constructor(
    /** JSON protocol shape name (`__type` without its namespace). */
    readonly type: string,
    /** Query protocol error code, also sent in `x-amzn-query-error`. */
    readonly code: string,
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = type;
  }

  /** `Sender` for the client's errors, `Receiver` for the service's own, as SQS reports them. */
  get fault(): 'Sender' | 'Receiver' {
    return this.status < 500 ? 'Sender' : 'Receiver';
  }
}

/** An error of the catalogue, with its SQS code and status. */
export function sqsError(type: SqsErrorType, message: string): SqsError {
  const { code, status } = CATALOGUE[type];
  return new SqsError(type, code, status, message);
}

/** SQS's wording for a parameter that has the wrong value. */
export function invalidParameter(name: string, value: unknown, reason: string): SqsError {
  return sqsError(
    'InvalidParameterValue',
    `Value ${typeof value === 'string' ? value : JSON.stringify(value)} for parameter ${name} is invalid. Reason: ${reason}`,
  );
}

/** SQS's wording for a missing required parameter. */
export function missingParameter(name: string): SqsError {
  return sqsError('MissingParameter', `The request must contain the parameter ${name}.`);
}

/** SQS's answer for any request naming a queue that does not exist. */
export function queueDoesNotExist(): SqsError {
  return sqsError('QueueDoesNotExist', 'The specified queue does not exist.');
}
