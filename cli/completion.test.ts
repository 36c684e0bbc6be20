import { spawnSync } from 'node:child_process';
import { Command } from 'commander';
import { bashCompletion, completionModel, zshCompletion } from './completion';

const program = new Command('n0ctl').option('--api-endpoint <x>');
program.command('get').option('-o, --output <f>');
program.command('do').option('--reverse');
program.command('config').command('view');
const model = completionModel(program, ['vm', 'bs'], ['yaml', 'json']);

describe('completion scripts', () => {
  it('are built from the command tree', () => {
    expect(model.commands).toEqual([
      { name: 'get', subcommands: [], options: ['--output', '-o'] },
      { name: 'do', subcommands: [], options: ['--reverse'] },
      { name: 'config', subcommands: ['view'], options: [] },
    ]);
    expect(bashCompletion(model)).toContain('get) words="--output -o vm bs" ;;');
    expect(zshCompletion(model)).toContain('config) compadd -- view ;;');
  });

  it('bash accepts the script and completes a kind after get', () => {
    const script = `${bashCompletion(model)}\nCOMP_WORDS=(n0ctl get v); COMP_CWORD=2; _n0ctl; echo "\${COMPREPLY[@]}"`;
    const r = spawnSync('bash', ['--norc', '-c', script], { encoding: 'utf8', timeout: 10_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('vm');
  });
});
