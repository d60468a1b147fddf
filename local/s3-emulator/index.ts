/** The local S3 emulator (why it exists and how it is built: s3-server.ts). */
export type { S3ObjectCreated } from './request-context.js';
export { type S3Emulator, type S3EmulatorOptions, startS3Emulator } from './s3-server.js';
