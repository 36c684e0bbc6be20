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

type Caller = (service: string, method: string, req: unknown) => Promise<any>;

/**
 * An empty 16 MiB disk on `node` for a VM that only has to run, not boot an OS (QEMU's driver
 * wants a disk or a kernel; SeaBIOS then finds nothing bootable and idles).
 */
export async function emptyDisk(call: Caller, name: string, node: string): Promise<string> {
  const bs = await call('BlockStorageService', 'CreateBlockStorage', {
    name, annotations: { 'n0core/provisioning/block_storage/request_node_name': node }, request_bytes: 1024 * 1024, limit_bytes: 16 * 1024 * 1024,
  });
  if (bs.state !== 'AVAILABLE') throw new Error(`empty disk ${name} is ${bs.state}`);
  return name;
}
