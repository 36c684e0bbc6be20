// A loopback HTTP server for disk images, standing in for the seed's source_url.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';

export interface ImageServer { url(name: string): string; close(): Promise<void> }

/** Serves each file of `files` at /<basename> on 127.0.0.1 (nothing else). */
export async function serveImages(files: string[]): Promise<ImageServer> {
  const byName = new Map(files.map((f) => [`/${path.basename(f)}`, f]));
  const server = http.createServer((req, res) => {
    const file = byName.get(req.url ?? '');
    if (!file) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'Content-Length': fs.statSync(file).size });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: (name) => `http://127.0.0.1:${port}/${name}`,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** Writes `label: ms` timings where a person reading the test output finds them. */
export function timing(scenario: string, label: string, ms: number): void {
  process.stderr.write(`[e2e timing] ${scenario}: ${label}: ${ms} ms\n`);
}
