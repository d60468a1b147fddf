import { sqsError } from './errors.js';
import type { WireProtocol } from './protocol.js';

const CONTENT_TYPE = 'application/x-amz-json-1.0';
const TARGET_PREFIX = 'AmazonSQS.';

/**
 * SQS's JSON protocol (awsJson1_0, query compatible), which the AWS SDK for JavaScript v3 and recent
 * CLIs speak: `POST /` with `X-Amz-Target: AmazonSQS.<Action>` and a JSON body. Errors carry the Smithy
 * shape in `__type` and the Query protocol's code in `x-amzn-query-error` (`<code>;<Sender|Receiver>`).
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-json-faqs.html
 */
export const jsonProtocol: WireProtocol = {
  decode({ headers, body }) {
    const target = String(headers['x-amz-target'] ?? '');
    if (!target.startsWith(TARGET_PREFIX)) {
      throw sqsError('InvalidAction', `The action ${target} is not valid for this endpoint.`);
    }
    let input: unknown;
    try {
      input = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
    } catch {
      throw sqsError('InvalidParameterValue', 'The request body is not valid JSON.');
    }
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      throw sqsError('InvalidParameterValue', 'The request body must be a JSON object.');
    }
    return { action: target.slice(TARGET_PREFIX.length), input: input as Record<string, unknown> };
  },

  encode(_action, output) {
    return { status: 200, headers: { 'content-type': CONTENT_TYPE }, body: JSON.stringify(output ?? {}) };
  },

  encodeError(error) {
    return {
      status: error.status,
      headers: { 'content-type': CONTENT_TYPE, 'x-amzn-query-error': `${error.code};${error.fault}` },
      body: JSON.stringify({ __type: `com.amazonaws.sqs#${error.type}`, message: error.message }),
    };
  },
};
