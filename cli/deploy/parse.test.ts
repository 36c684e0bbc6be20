import { spawnSync } from 'node:child_process';
import { N0deployError, checkSource, describeStep, parseN0deploy, shellQuote } from './parse';

function problems(text: string, baseDir = '/srv/app'): string[] {
  try {
    parseN0deploy(text, { file: 'n0deploy', baseDir });
  } catch (e) {
    if (e instanceof N0deployError) return e.problems;
    throw e;
  }
  throw new Error('parsed without problems');
}

describe('parseN0deploy', () => {
  test('the seed ADR\'s example: optional BOOTSTRAP with a continued RUN, then DEPLOY with a COPY', () => {
    const file = parseN0deploy([
      'BOOTSTRAP # optional',
      'RUN apt update \\',
      ' && apt upgrade -y \\',
      ' && apt install -y ...',
      'DEPLOY',
      'COPY some_app/ /opt/some_app',
    ].join('\n'), { baseDir: '/srv/app' });
    expect(file.bootstrap).toEqual({ name: 'BOOTSTRAP', line: 1, steps: [{ instruction: 'RUN', line: 2, command: 'apt update  && apt upgrade -y  && apt install -y ...' }] });
    expect(file.deploy).toEqual({ name: 'DEPLOY', line: 5, steps: [{ instruction: 'COPY', line: 6, source: 'some_app', destination: '/opt/some_app' }] });
  });

  test('BOOTSTRAP is optional; keywords are case-insensitive; comments and blank lines, also inside a continuation, are skipped', () => {
    const file = parseN0deploy([
      '# deploys the app',
      '',
      'deploy',
      'run make \\',
      '  # a comment inside the continuation, as Docker allows',
      '',
      '  install',
      'Copy ./bin ~/bin/',
      '   # indented comment',
      'RUN ["printf", "%s\\n", "it\'s here"]',
    ].join('\r\n'));
    expect(file.bootstrap).toBeUndefined();
    expect(file.deploy.steps).toEqual([
      { instruction: 'RUN', line: 4, command: 'make   install' },
      { instruction: 'COPY', line: 8, source: 'bin', destination: 'bin/' },
      { instruction: 'RUN', line: 10, command: `printf '%s\n' 'it'\\''s here'` },
    ]);
  });

  test('a shell command that starts with [ stays a shell command', () => {
    const file = parseN0deploy('DEPLOY\nRUN [ -f /etc/hostname ] && echo yes');
    expect(file.deploy.steps).toEqual([{ instruction: 'RUN', line: 2, command: '[ -f /etc/hostname ] && echo yes' }]);
  });

  test('COPY takes the JSON form for paths with spaces; "." is the whole folder', () => {
    const file = parseN0deploy('DEPLOY\nCOPY ["my dir/", "/opt/my app/"]\nCOPY . /srv/all', { baseDir: '/srv/app' });
    expect(file.deploy.steps).toEqual([
      { instruction: 'COPY', line: 2, source: 'my dir', destination: '/opt/my app/' },
      { instruction: 'COPY', line: 3, source: '.', destination: '/srv/all' },
    ]);
  });

  test('every problem at once, each naming its line', () => {
    expect(problems([
      'RUN echo too early',
      'BOOTSTRAP',
      'FROM debian',
      'RUN',
      'DEPLOY now',
      'COPY a',
      'COPY a b c',
      'COPY --chown=root a b',
      'EXPOSE 80',
      'FOO bar',
      'BOOTSTRAP',
    ].join('\n'))).toEqual([
      'line 1: RUN comes before any section; start with BOOTSTRAP or DEPLOY',
      'line 3: FROM is a Dockerfile instruction that n0deploy does not have (it has RUN and COPY)',
      'line 4: RUN needs a command',
      'line 5: DEPLOY takes no arguments, got "now"',
      'line 6: COPY takes a source and a destination (COPY SRC DST), got 1 argument',
      'line 7: COPY takes a source and a destination (COPY SRC DST), got 3 arguments (a path with spaces needs the JSON form: COPY ["my file", "/dst"])',
      'line 8: COPY options such as --chown are not supported',
      'line 9: EXPOSE is a Dockerfile instruction that n0deploy does not have (it has RUN and COPY)',
      'line 10: unknown instruction "FOO" (n0deploy knows BOOTSTRAP, DEPLOY, RUN and COPY)',
      'line 11: a second BOOTSTRAP section (the first is on line 2)',
      'line 11: BOOTSTRAP must come before DEPLOY (line 5)',
    ]);
  });

  test('a file needs a DEPLOY section; a continuation needs a next line', () => {
    expect(problems('BOOTSTRAP\nRUN true')).toEqual(['no DEPLOY section: a file needs one (BOOTSTRAP is optional and comes first)']);
    expect(problems('DEPLOY\nRUN echo \\\n# only a comment follows')).toEqual(['line 2: the instruction ends with "\\" but no line follows it']);
    expect(problems('BOOTSTRAP\nDEPLOY\nRUN true')).toEqual(['line 1: the BOOTSTRAP section has no steps']);
    expect(problems('DEPLOY # nothing yet')).toEqual(['line 1: the DEPLOY section has no steps']);
    expect(problems('')).toEqual(['no DEPLOY section: a file needs one (BOOTSTRAP is optional and comes first)']);
  });

  test('the error message names the file and says nothing ran', () => {
    expect(() => parseN0deploy('DEPLOY\nCOPY /etc/passwd /tmp/x', { file: 'app/n0deploy', baseDir: '/srv/app' }))
      .toThrow('app/n0deploy: 1 problem; nothing was run:\n  line 2: COPY source /etc/passwd is outside the file\'s folder (/srv/app): sources are relative to it');
    expect(() => parseN0deploy('DEPLOY\nRUN a\u0000b')).toThrow('the file contains a NUL byte');
  });

  test('hostile COPY sources are refused', () => {
    expect(problems([
      'DEPLOY',
      'COPY /etc/shadow /tmp/',
      'COPY ../secret /tmp/',
      'COPY a/../../secret /tmp/',
      'COPY .. /tmp/',
      'COPY /srv/application /tmp/',
      'COPY ["a\\u0000b", "/tmp/"]',
      'COPY ["a\\nb", "/tmp/"]',
      'COPY ["a\\tb", "/tmp/"]',
      'COPY *.conf /etc/',
      'COPY ["", "/tmp"]',
      'COPY ["ok", "/tmp/\\u0000x"]',
      'COPY ok ~root/x',
    ].join('\n'))).toEqual([
      'line 2: COPY source /etc/shadow is outside the file\'s folder (/srv/app): sources are relative to it',
      'line 3: COPY source ../secret leaves the file\'s folder with ".."',
      'line 4: COPY source a/../../secret leaves the file\'s folder with ".."',
      'line 5: COPY source .. leaves the file\'s folder with ".."',
      'line 6: COPY source /srv/application is outside the file\'s folder (/srv/app): sources are relative to it',
      'line 7: COPY source "a\\u0000b" contains a NUL byte',
      'line 8: COPY source "a\\nb" contains the control character U+000A',
      'line 9: COPY source "a\\tb" contains a tab',
      'line 10: COPY source "*.conf": wildcards are not supported; name a file or a folder',
      'line 11: COPY source is empty',
      'line 12: COPY destination "/tmp/\\u0000x" contains a NUL byte',
      'line 13: COPY destination ~root/x: only "~/" (the login user\'s home) is understood, not ~user',
    ]);
  });

  test('sources inside the folder are fine, also absolute ones and ones with an inner ..', () => {
    expect(checkSource('/srv/app/site/', '/srv/app')).toEqual({ ok: 'site' });
    expect(checkSource('/srv/app', '/srv/app')).toEqual({ ok: '.' });
    expect(checkSource('a/../b//c/', '/srv/app')).toEqual({ ok: 'b/c' });
    expect(checkSource('./', '/srv/app')).toEqual({ ok: '.' });
    expect(checkSource('/srv/app/x', undefined)).toEqual({ problem: 'COPY source /srv/app/x is outside the file\'s folder: sources are relative to it' });
  });

  test('describeStep shortens long commands and names the line', () => {
    const file = parseN0deploy(`DEPLOY\nRUN echo ${'x'.repeat(100)}\nCOPY a b`);
    expect(describeStep(file.deploy.steps[0])).toBe(`RUN echo ${'x'.repeat(74)}\u2026 (line 2)`);
    expect(describeStep(file.deploy.steps[1])).toBe('COPY a b (line 3)');
  });
});

describe('shellQuote', () => {
  test('whatever the word, /bin/sh reads it back unchanged', () => {
    const words = ['plain', '', "it's", 'a b', '$HOME', '`id`', '"q"', '\\', '!x', 'line\nbreak', '; rm -rf /', '*', '~'];
    const script = words.map(shellQuote).join(' ');
    const r = spawnSync('/bin/sh', ['-c', `for w in ${script}; do printf '<%s>' "$w"; done`], { encoding: 'utf8' });
    expect(r.stdout).toBe(words.map((w) => `<${w}>`).join(''));
  });
});
