/// <reference path="./.sst/platform/config.d.ts" />

/**
 * SST app: `npx sst deploy --stage prod`. Everything it creates is built in `stacks/` from the one
 * topology in `topology/topology.ts` — the same declaration the local runtime runs.
 */
export default $config({
  app(input) {
    return {
      name: 'telemetry-pipeline',
      home: 'aws',
      // Production data outlives a mistaken `sst remove`.
      removal: input?.stage === 'production' || input?.stage === 'prod' ? 'retain' : 'remove',
      protect: input?.stage === 'production' || input?.stage === 'prod',
    };
  },
  async run() {
    const { pipeline } = await import('./stacks/pipeline.js');
    return pipeline();
  },
});
