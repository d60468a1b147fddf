import { invalidParameter } from './errors.js';

/**
 * One page of names (sorted) after `nextToken`. As in SQS, the result is at most 1000 names and a
 * `NextToken` is only given when the request set `MaxResults`.
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ListQueues.html
 */
export function paginate(
  names: readonly string[],
  maxResults: number | undefined,
  nextToken: string | undefined,
): { page: string[]; nextToken?: string } {
  let after: string | undefined;
  if (nextToken !== undefined) {
    after = Buffer.from(nextToken, 'base64url').toString('utf8');
    if (after === '') throw invalidParameter('NextToken', nextToken, 'Invalid NextToken value.');
  }
  const rest = after === undefined ? names : names.filter((name) => name > after);
  const page = rest.slice(0, maxResults ?? 1000);
  const more = maxResults !== undefined && rest.length > page.length;
  return more ? { page, nextToken: Buffer.from(page.at(-1)!).toString('base64url') } : { page };
}
