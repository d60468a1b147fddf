/**
 * Severity words of the common vocabularies (syslog keywords, log4j/logback, Python logging, Windows,
 * single letters as in glog/Android) onto the syslog scale 0 (emergency) … 7 (debug).
 * https://datatracker.ietf.org/doc/html/rfc5424#section-6.2.1
 */
export const SEVERITY_NAMES = [
  'emergency',
  'alert',
  'critical',
  'error',
  'warning',
  'notice',
  'info',
  'debug',
] as const;

export const SEVERITY_WORDS: Record<number, readonly string[]> = {
  0: ['emerg', 'emergency', 'panic', '0'],
  1: ['alert', 'a', '1'],
  2: ['crit', 'critical', 'fatal', 'f', 'c', 'severe', '2'],
  3: ['err', 'error', 'e', 'failure', 'fail', '3'],
  4: ['warn', 'warning', 'w', '4'],
  5: ['notice', 'n', '5'],
  6: ['info', 'information', 'informational', 'i', 'inf', 'ok', '6'],
  7: ['debug', 'dbg', 'd', 'trace', 't', 'verbose', 'v', 'fine', 'finer', 'finest', '7'],
};

/** SQL: VARCHAR expression → TINYINT on the syslog scale, NULL when the word is unknown. */
export function severitySql(x: string): string {
  const cases = Object.entries(SEVERITY_WORDS)
    .flatMap(([n, words]) => words.map((w) => `WHEN '${w}' THEN ${n}`))
    .join(' ');
  return `CAST(CASE lower(trim(${x}, ' []:<>')) ${cases} END AS TINYINT)`;
}

/** SQL: syslog scale number → its name. */
export function severityNameSql(x: string): string {
  return `[${SEVERITY_NAMES.map((n) => `'${n}'`).join(', ')}][${x} + 1]`;
}
