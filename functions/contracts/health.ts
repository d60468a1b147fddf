/**
 * A device's health over a period, 0–100: 100, minus 2 per anomalous reading, 10 per event of error
 * severity or worse (syslog ≤ 3) and 2 per warning (4), never below 0. The warehouse's
 * `device_health_hourly` view and the read API's heatmap both score with this, over hours or wider
 * columns.
 */
export const ERROR_SEVERITY = 3;
export const WARNING_SEVERITY = 4;

export function healthScoreSql(anomalies: string, errors: string, warnings: string): string {
  return `greatest(0, 100 - 2 * ${anomalies} - 10 * ${errors} - 2 * ${warnings})`;
}
