// The README's routes table, generated from the mapping table (node dist/api/gateway/readme.js).
import { ROUTES, WATCH_PATH } from './routes';

export function routesMarkdown(): string {
  const rows = ROUTES.map((r) => `| \`${r.method}\` | \`${r.path}\` | ${r.service}.${r.rpc} | ${r.body ? 'request' : '—'} |`);
  return ['| method | path | RPC | JSON body |', '| --- | --- | --- | --- |', ...rows, `| \`GET\` | \`${WATCH_PATH}\` | store watch (Server-Sent Events) | — |`].join('\n');
}

if (require.main === module) process.stdout.write(routesMarkdown() + '\n');
