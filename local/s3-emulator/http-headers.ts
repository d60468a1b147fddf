import type { IncomingHttpHeaders } from 'node:http';

/** A request header's value; a repeated header's values joined with commas, as HTTP combines them. */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}
