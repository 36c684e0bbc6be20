// Loads proto/*.proto at run time (no codegen step), from the sources or from dist/.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';

export function protoDirectory(): string {
  for (const candidate of [path.resolve(__dirname, '..', '..', 'proto'), path.resolve(__dirname, '..', '..', '..', 'proto')]) {
    if (fs.existsSync(path.join(candidate, 'n0stack.proto'))) return candidate;
  }
  throw new Error(`proto/ not found near ${__dirname}`);
}

export function loadFacadeProto(options: { longs: typeof String | typeof Number } = { longs: Number }): protoLoader.PackageDefinition {
  return protoLoader.loadSync(path.join(protoDirectory(), 'n0stack.proto'), {
    keepCase: true, longs: options.longs, enums: String, defaults: true, oneofs: true,
  });
}
