import type { z } from 'zod';

/** A request as a Lambda Function URL delivers it (payload format 2.0), reduced to what routing needs. */
export interface ApiRequest {
  method: string;
  path: string;
  query: Record<string, string | undefined>;
  headers: Record<string, string | undefined>;
  body?: string;
}

export interface ApiResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
  isBase64Encoded?: boolean;
}

/** A request the API refuses: the status and a message that names what is wrong. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export const json = (
  statusCode: number,
  value: unknown,
  headers: Record<string, string> = {},
): ApiResponse => ({
  statusCode,
  headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers },
  body: `${JSON.stringify(value)}\n`,
});

/**
 * Parses a route's query string with its schema; a bad or unknown parameter is a 400 that names it
 * (`points: Too big: expected number to be <=5000`).
 */
export function parseQuery<S extends z.ZodType>(
  schema: S,
  query: Record<string, string | undefined>,
): z.output<S> {
  const present = Object.fromEntries(Object.entries(query).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    throw new HttpError(
      400,
      parsed.error.issues
        .map((i) =>
          i.code === 'unrecognized_keys'
            ? `unknown parameter${i.keys.length > 1 ? 's' : ''} ${i.keys.join(', ')}`
            : i.code === 'invalid_type' && /received undefined/.test(i.message)
              ? `${i.path.join('.')}: required`
              : `${i.path.join('.') || 'query'}: ${i.message}`,
        )
        .join('; '),
    );
  }
  return parsed.data;
}
