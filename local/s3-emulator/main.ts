/**
 * Runs the S3 emulator as a process of its own:
 *   node --import tsx local/s3-emulator/main.ts --dir <data folder> [--port 0] [--host 127.0.0.1] [--region us-east-1]
 * with the key pair in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. Once listening it prints one JSON
 * line, `{"url":…,"port":…}`, on stdout; SIGINT or SIGTERM stop it.
 */
import { parseArgs } from 'node:util';
import { startS3Emulator } from './s3-server.js';

const { values } = parseArgs({
  options: {
    dir: { type: 'string' },
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    region: { type: 'string', default: process.env.AWS_REGION ?? 'us-east-1' },
  },
});
const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey } = process.env;
if (!values.dir || !accessKeyId || !secretAccessKey || !/^\d+$/.test(values.port)) {
  process.stderr.write(
    'usage: main.ts --dir <folder> [--port <n>] [--host <address>] [--region <region>]\n' +
      '       with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set\n',
  );
  process.exit(2);
}
const s3 = await startS3Emulator({
  dir: values.dir,
  host: values.host,
  port: Number(values.port),
  credentials: { accessKeyId, secretAccessKey },
  region: values.region,
});
process.stdout.write(`${JSON.stringify({ url: s3.url, port: s3.port })}\n`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void s3.stop().then(() => process.exit(0));
  });
}
