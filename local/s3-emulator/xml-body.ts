import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestStream } from './digests.js';
import { S3Error } from './errors.js';
import { requestBody } from './request-body.js';
import type { RequestContext } from './request-context.js';
import { parseXml, type XmlElement, XmlSyntaxError } from './xml.js';

/** CompleteMultipartUpload with 10,000 parts is about 1 MB; nothing S3 accepts as XML is larger. */
const MAX_XML_BYTES = 2 * 1024 * 1024;

/**
 * Reads a request's XML body (checked like any body: Content-MD5, checksums) and parses it, expecting
 * `root` as its root element. Malformed or unexpected XML is S3's 400 MalformedXML.
 */
export async function readXmlBody(ctx: RequestContext, root: string): Promise<XmlElement> {
  const body = requestBody(ctx.req);
  const digests = new DigestStream(body.digests);
  const chunks: Buffer[] = [];
  const collect = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk);
      done(
        digests.size > MAX_XML_BYTES
          ? new S3Error('MalformedXML', `The XML body is larger than ${MAX_XML_BYTES} bytes.`)
          : null,
      );
    },
  });
  await pipeline([...body.streams, digests, collect], { signal: ctx.signal });
  body.verify(digests);
  try {
    const parsed = parseXml(Buffer.concat(chunks).toString('utf8'));
    if (parsed.name !== root) throw new XmlSyntaxError(`expected <${root}>, got <${parsed.name}>`);
    return parsed;
  } catch (err) {
    if (err instanceof XmlSyntaxError) throw new S3Error('MalformedXML', undefined, { Reason: err.message });
    throw err;
  }
}
