#!/usr/bin/env node
// n0ctl: the user's CLI, kubectl-like, and the seed's `do` DAG runner.
import { Command } from 'commander';
import { VERSION } from './version';

const program = new Command('n0ctl').description('n0stack command line client').version(VERSION);
program.parseAsync(process.argv).catch((err: Error) => {
  console.error(`n0ctl: ${err.message}`);
  process.exit(1);
});
