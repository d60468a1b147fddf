/**
 * The SQS emulator as a process of its own:
 *
 *   node --import tsx local/sqs-emulator/main.ts --dir <folder> [--port 0] [--host 127.0.0.1]
 *     [--region us-east-1] [--account-id 000000000000] [--release-in-flight]
 *
 * Once listening it prints one JSON line on stdout, `{"url":"http://127.0.0.1:<port>","port":<port>}`,
 * and it stops on SIGINT or SIGTERM.
 */
import { parseArgs } from 'node:util';
import { startSqsEmulator } from './sqs-server.js';

const { values } = parseArgs({
  options: {
    dir: { type: 'string' },
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    region: { type: 'string', default: 'us-east-1' },
    'account-id': { type: 'string', default: '000000000000' },
    'release-in-flight': { type: 'boolean', default: false },
  },
});
if (!values.dir) {
  process.stderr.write('usage: main.ts --dir <folder> [--port <n>] [--host <address>] [--region <r>]\n');
  process.exit(2);
}

const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey } = process.env;
if (!accessKeyId || !secretAccessKey) {
  process.stderr.write(
    'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: the key pair requests must be signed with\n',
  );
  process.exit(2);
}

const emulator = await startSqsEmulator({
  dir: values.dir,
  credentials: { accessKeyId, secretAccessKey },
  port: Number(values.port),
  host: values.host,
  region: values.region,
  accountId: values['account-id'],
  releaseInFlightOnStart: values['release-in-flight'],
});
process.stdout.write(`${JSON.stringify({ url: emulator.url, port: emulator.port })}\n`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void emulator.stop().then(() => process.exit(0));
  });
}
