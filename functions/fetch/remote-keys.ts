/**
 * Raw keys for fetched files: `<factory>/<yyyy>/<mm>/<dd>/<path>`. Remote names are untrusted: `..`,
 * `.` and empty segments are dropped, absolute paths made relative, control characters and characters
 * S3 tools mishandle replaced — the result can never leave the factory's prefix.
 */
export function sanitizeRemotePath(path: string): string {
  const segments = path
    .replace(/\\/g, '/')
    .split('/')
    .map((s) =>
      s
        // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
        .replace(/[\u0000-\u001f\u007f]/g, '')
        .replace(/[<>:"|?*{}^`%#\\[\]]/g, '_')
        .trim(),
    )
    .filter((s) => s !== '' && s !== '.' && s !== '..');
  return segments.join('/') || 'unnamed';
}

export function fetchedKey(factory: string, when: Date, remotePath: string): string {
  const [y, m, d] = when.toISOString().slice(0, 10).split('-');
  return `${factory}/${y}/${m}/${d}/${sanitizeRemotePath(remotePath)}`;
}
