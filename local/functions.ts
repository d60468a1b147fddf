import { randomUUID } from 'node:crypto';
import type { Context } from 'aws-lambda';
import { logger } from '../functions/core/logger.js';
import { type FunctionName, topology } from '../topology/topology.js';

export type LambdaHandler = (event: unknown, context: Context) => Promise<unknown>;

/** Counts and times every local invocation; read by the runtime's `/metrics` and its log line. */
export type InvocationObserver = (
  name: string,
  outcome: 'ok' | 'partial' | 'error',
  ms: number,
  records: number,
) => void;

/** A Lambda context for a local invocation, with the function's real time budget. */
export function lambdaContext(name: string, timeoutSeconds: number): Context {
  const deadline = Date.now() + timeoutSeconds * 1000;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: name,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${name}`,
    memoryLimitInMB: '0',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${name}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/** Loads the functions the topology declares, from `functions/<handler>.ts`, in this process. */
export async function loadFunctions(): Promise<Map<FunctionName, LambdaHandler>> {
  const out = new Map<FunctionName, LambdaHandler>();
  for (const [name, spec] of Object.entries(topology.functions) as [FunctionName, { handler: string }][]) {
    const mod = (await import(`../functions/${spec.handler}.ts`)) as { handler: LambdaHandler };
    out.set(name, mod.handler);
  }
  return out;
}

/**
 * Releases what loaded functions hold beyond an invocation (the api function's query process): a
 * module that exports `close` has it called. Lambda ends the environment instead; locally the runtime
 * calls this on stop.
 */
export async function closeFunctions(): Promise<void> {
  for (const spec of Object.values(topology.functions) as { handler: string }[]) {
    const mod = (await import(`../functions/${spec.handler}.ts`)) as { close?: () => Promise<void> };
    await mod.close?.();
  }
}

function recordCount(event: unknown): number {
  const records = (event as { Records?: unknown[] } | null)?.Records;
  return Array.isArray(records) ? records.length : 1;
}

/**
 * Invokes a handler with a context and writes one log line: function, records, outcome, ms. (The
 * handlers' own metrics middleware counts invocations, here as in Lambda.)
 */
export async function invokeFunction(
  name: FunctionName,
  handler: LambdaHandler,
  event: unknown,
): Promise<unknown> {
  const started = performance.now();
  const records = recordCount(event);
  const context = lambdaContext(name, topology.functions[name].timeoutSeconds);
  try {
    const result = await handler(event, context);
    const failures = (result as { batchItemFailures?: unknown[] } | null)?.batchItemFailures?.length ?? 0;
    const ms = Math.round(performance.now() - started);
    const outcome = failures > 0 ? 'partial' : 'ok';
    logger.info(
      { function: name, records, outcome, failures, ms, requestId: context.awsRequestId },
      `invoke ${name}`,
    );
    return result;
  } catch (err) {
    const ms = Math.round(performance.now() - started);
    logger.error(
      { function: name, records, outcome: 'error', ms, err, requestId: context.awsRequestId },
      `invoke ${name}`,
    );
    throw err;
  }
}
