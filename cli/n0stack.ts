#!/usr/bin/env node
// n0stack: the server binary. `up` runs everything on one machine; `api`, `controllers` and
// `agent` run one part each for multi-machine deployments.
import { Command } from 'commander';
import { VERSION } from './version';

const program = new Command('n0stack')
  .description('n0stack server: facade, controllers and node agent')
  .version(VERSION)
  .option('--log-level <level>', 'error|warn|info|debug (env N0STACK_LOG_LEVEL)');

program.command('up')
  .description('all-in-one: embedded store, gRPC facade, controllers and a local agent')
  .option('--data-dir <dir>', 'state directory (store, disks, VM run dirs, certificates)', '/var/lib/n0stack')
  .option('--listen <host:port>', 'facade gRPC address', '127.0.0.1:20180')
  .option('--agent-listen <host:port>', 'local agent gRPC address', '127.0.0.1:20181')
  .option('--node-name <name>', 'name of the local Node (default: hostname)')
  .action(() => { throw new Error('n0stack up: not implemented yet'); });

program.parseAsync(process.argv).catch((err: Error) => {
  console.error(`n0stack: ${err.message}`);
  process.exit(1);
});
