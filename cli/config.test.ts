import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { configPath, loadConfig, parseConfig, redactedConfig, resolveConnection, useContext, writeClientConfig } from './config';

const config = parseConfig(`
current-context: lab
contexts:
  - name: lab
    endpoint: 10.0.0.1:20180
    token: lab-token-123456
  - name: prod
    endpoint: prod:20180
    token: prod-token
    ca: /etc/n0stack/ca.pem
`, 'test');

describe('connection precedence', () => {
  it('uses the current context, then the default endpoint when there is nothing', () => {
    expect(resolveConnection(config, {}, {})).toMatchObject({ endpoint: '10.0.0.1:20180', token: 'lab-token-123456', context: 'lab', sources: { endpoint: 'context "lab"' } });
    expect(resolveConnection({ contexts: [] }, {}, {})).toMatchObject({ endpoint: '127.0.0.1:20180', token: undefined, sources: { endpoint: 'default' } });
  });

  it('environment beats the context; flags beat both; --context picks another context', () => {
    const env = { N0STACK_API_ENDPOINT: 'env:1', N0STACK_TOKEN: 'env-token' };
    expect(resolveConnection(config, {}, env)).toMatchObject({ endpoint: 'env:1', token: 'env-token', sources: { endpoint: 'N0STACK_API_ENDPOINT', token: 'N0STACK_TOKEN' } });
    expect(resolveConnection(config, { apiEndpoint: 'flag:2', token: 'flag-token' }, env)).toMatchObject({ endpoint: 'flag:2', token: 'flag-token', sources: { endpoint: '--api-endpoint', token: '--token-file' } });
    expect(resolveConnection(config, { context: 'prod' }, {})).toMatchObject({ endpoint: 'prod:20180', token: 'prod-token', ca: '/etc/n0stack/ca.pem', context: 'prod' });
    expect(resolveConnection(config, { context: 'prod' }, { N0STACK_TOKEN: 't' }).token).toBe('t');
  });

  it('honours the original n0cli\'s N0CLI_API_ENDPOINT below N0STACK_API_ENDPOINT and the flag, above the context', () => {
    expect(resolveConnection(config, {}, { N0CLI_API_ENDPOINT: 'n0cli:3' })).toMatchObject({ endpoint: 'n0cli:3', sources: { endpoint: 'N0CLI_API_ENDPOINT' } });
    expect(resolveConnection(config, {}, { N0CLI_API_ENDPOINT: 'n0cli:3', N0STACK_API_ENDPOINT: 'env:1' }).endpoint).toBe('env:1');
    expect(resolveConnection(config, { apiEndpoint: 'flag:2' }, { N0CLI_API_ENDPOINT: 'n0cli:3' }).endpoint).toBe('flag:2');
  });

  it('names the known contexts when --context is wrong', () => {
    expect(() => resolveConnection(config, { context: 'nope' }, {})).toThrow('context "nope" is not in the config (contexts: lab, prod)');
  });

  it('rejects malformed files with the field', () => {
    expect(() => parseConfig('contexts: {a: 1}', 'f')).toThrow('f: contexts must be a list of {name, endpoint, token, ca}');
    expect(() => parseConfig('contexts: [{endpoint: x}]', 'f')).toThrow('f: contexts[0].name is required');
    expect(() => parseConfig('contexts: [{name: a, token: 5}]', 'f')).toThrow('f: contexts[0].token must be a string');
  });

  it('redacts tokens for config view', () => {
    const shown = JSON.stringify(redactedConfig(config));
    expect(shown).not.toContain('lab-token-123456');
    expect(shown).not.toContain('prod-token');
    expect(shown.match(/"token":"REDACTED"/g)).toHaveLength(2);
  });

  it('N0STACK_CONFIG overrides the path', () => {
    expect(configPath({ N0STACK_CONFIG: '/x/y' })).toBe('/x/y');
    expect(configPath({ HOME: '/home/u' })).toBe('/home/u/.n0stack/config');
  });
});

describe('config files on disk', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0ctl-config-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writeClientConfig creates a private file, keeps other contexts, and switches to the new one', () => {
    const file = path.join(dir, 'sub', 'config');
    expect(loadConfig(file)).toEqual({ contexts: [] });
    writeClientConfig(file, { endpoint: '127.0.0.1:20180', token: 't1' });
    writeClientConfig(file, { endpoint: 'other:20180', token: 't2', ca: '/ca.pem' }, 'other');
    writeClientConfig(file, { endpoint: '127.0.0.1:20190', token: 't3' });
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(loadConfig(file)).toEqual({
      'current-context': 'default',
      contexts: [
        { name: 'default', endpoint: '127.0.0.1:20190', token: 't3' },
        { name: 'other', endpoint: 'other:20180', token: 't2', ca: '/ca.pem' },
      ],
    });
    useContext(file, 'other');
    expect(resolveConnection(loadConfig(file), {}, {})).toMatchObject({ endpoint: 'other:20180', ca: '/ca.pem' });
    expect(() => useContext(file, 'x')).toThrow(`context "x" is not in ${file} (contexts: default, other)`);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['config']);
  });
});
