import type { DuckDBConnection } from '@duckdb/node-api';
import type { Reference } from './reference-store.js';

/**
 * Appends the reference data to two existing tables with the columns (factory, device, model, line,
 * site, criticality, commissioned) and (code, category, severity, description, action). Used for the
 * enrich function's temp tables and the warehouse's `devices` / `error_codes`.
 */
export async function appendReference(
  c: DuckDBConnection,
  ref: Pick<Reference, 'devices' | 'errorCodes'>,
  tables: { devices: string; errorCodes: string; catalog?: string; schema?: string },
): Promise<void> {
  const schema = tables.schema ?? (tables.catalog ? 'main' : undefined);
  const devices = await c.createAppender(tables.devices, schema, tables.catalog);
  for (const d of ref.devices) {
    for (const v of [d.factory, d.device, d.model, d.line, d.site, d.criticality, d.commissioned])
      devices.appendVarchar(v);
    devices.endRow();
  }
  devices.closeSync();
  const codes = await c.createAppender(tables.errorCodes, schema, tables.catalog);
  for (const e of ref.errorCodes) {
    codes.appendVarchar(e.code);
    codes.appendVarchar(e.category);
    codes.appendTinyInt(e.severity);
    codes.appendVarchar(e.description);
    codes.appendVarchar(e.action);
    codes.endRow();
  }
  codes.closeSync();
}
