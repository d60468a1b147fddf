import { describe, expect, it } from 'vitest';
import { duckdbShareMB } from '../../functions/core/config.js';

describe('DuckDB memory share of a function', () => {
  it('sets 256 MB aside for Node and DuckDB allocations outside its limit, and keeps 20% headroom', () => {
    expect(duckdbShareMB(512)).toBe(204);
    expect(duckdbShareMB(2048)).toBe(1433);
    expect(duckdbShareMB(3008)).toBe(2201);
  });

  it('never goes below 128 MB', () => {
    expect(duckdbShareMB(256)).toBe(128);
  });
});
