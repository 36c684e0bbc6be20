import { run, CommandError } from './exec';

describe('run', () => {
  it('passes arguments verbatim, without a shell', async () => {
    const { stdout } = await run('printf', ['%s|', '$(id)', 'a b', ';echo x']);
    expect(stdout).toBe('$(id)|a b|;echo x|');
  });
  it('reports the exit code and stderr', async () => {
    await expect(run('sh', ['-c', 'echo oops >&2; exit 3'])).rejects.toMatchObject({ exitCode: 3, stderr: 'oops\n' });
  });
  it('says when the program is missing', async () => {
    await expect(run('definitely-not-a-program', [])).rejects.toThrow(/is not installed/);
  });
  it('enforces the deadline', async () => {
    const err = await run('sleep', ['5'], { timeoutMs: 100 }).catch((e) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(err.message).toMatch(/timed out/);
  });
});
