import { describe, expect, it } from 'vitest';
import { partitionEnd } from '../../functions/contracts/keys.js';
import { dataEnd, pastWarehouseRetention, warehouseCutoff } from '../../functions/contracts/manifest.js';

const file = (maxTs: string | undefined, createdAt = '2026-05-05T00:00:00.000Z') => ({
  maxTs,
  source: { createdAt },
});

describe('the warehouse retention, by whole UTC months', () => {
  it('a file ends with the UTC month of its newest row; without rows, of its raw object', () => {
    expect(new Date(dataEnd(file('2026-11-25T12:00:00.000Z'))).toISOString()).toBe(
      '2026-12-01T00:00:00.000Z',
    );
    expect(new Date(dataEnd(file('2026-12-31T23:59:59.999Z'))).toISOString()).toBe(
      '2027-01-01T00:00:00.000Z',
    );
    // An offset written in the manifest is a UTC instant: 01:00+02:00 on June 1 is May 31 in UTC.
    expect(new Date(dataEnd(file('2026-06-01T01:00:00+02:00'))).toISOString()).toBe(
      '2026-06-01T00:00:00.000Z',
    );
    expect(new Date(dataEnd(file(undefined))).toISOString()).toBe('2026-06-01T00:00:00.000Z');
  });

  it('a partition ends with its month, or its day in the earlier layout', () => {
    expect(new Date(partitionEnd({ kind: 'month', value: '2026-12' })).toISOString()).toBe(
      '2027-01-01T00:00:00.000Z',
    );
    expect(new Date(partitionEnd({ kind: 'date', value: '2024-02-29' })).toISOString()).toBe(
      '2024-03-01T00:00:00.000Z',
    );
  });

  it('a file is past the retention once its month ended before the cutoff; no retention keeps all', () => {
    const now = new Date('2026-12-07T00:00:00Z');
    const m = file('2026-11-25T12:00:00.000Z');
    expect(pastWarehouseRetention(m, warehouseCutoff(6, now))).toBe(true); // cutoff December 1
    expect(pastWarehouseRetention(m, warehouseCutoff(7, now))).toBe(false); // cutoff November 30
    expect(pastWarehouseRetention(m, warehouseCutoff(undefined, now))).toBe(false);
  });
});
