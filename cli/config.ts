// Where n0ctl connects: ~/.n0stack/config (kubeconfig-like contexts), overridden by environment
// variables, overridden by flags. Resolution is pure; only load/write touch the disk.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import YAML from 'yaml';
import { InvalidArgumentError } from '../api/errors';

export const DEFAULT_ENDPOINT = '127.0.0.1:20180';
export const DEFAULT_CONTEXT = 'default';

export interface Context {
  name: string;
  endpoint?: string;
  token?: string;
  /** PEM file of the CA that signed the facade's certificate; its presence turns TLS on. */
  ca?: string;
}

export interface ClientConfig {
  'current-context'?: string;
  contexts: Context[];
}

export interface Connection {
  endpoint: string;
  token?: string;
  ca?: string;
  context?: string;
  /** Where each value came from, for `config view` and error messages. */
  sources: { endpoint: string; token?: string; ca?: string };
}

export interface ConnectionFlags {
  apiEndpoint?: string;
  /** The token read from --token-file (a token on a command line would show in ps and shell history). */
  token?: string;
  context?: string;
  ca?: string;
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.N0STACK_CONFIG || path.join(env.HOME || os.homedir(), '.n0stack', 'config');
}

export function parseConfig(text: string, source: string): ClientConfig {
  const raw = YAML.parse(text) as unknown;
  if (raw === null || raw === undefined) return { contexts: [] };
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new InvalidArgumentError(`${source}: must be a YAML map with current-context and contexts`);
  const obj = raw as Record<string, unknown>;
  const current = obj['current-context'];
  if (current !== undefined && typeof current !== 'string') throw new InvalidArgumentError(`${source}: current-context must be a string`, 'current-context');
  const list = obj.contexts ?? [];
  if (!Array.isArray(list)) throw new InvalidArgumentError(`${source}: contexts must be a list of {name, endpoint, token, ca}`, 'contexts');
  const contexts = list.map((c, i): Context => {
    if (!c || typeof c !== 'object' || Array.isArray(c)) throw new InvalidArgumentError(`${source}: contexts[${i}] must be a map`, `contexts[${i}]`);
    const ctx = c as Record<string, unknown>;
    for (const key of ['name', 'endpoint', 'token', 'ca']) {
      if (ctx[key] !== undefined && typeof ctx[key] !== 'string') throw new InvalidArgumentError(`${source}: contexts[${i}].${key} must be a string`, `contexts[${i}].${key}`);
    }
    if (!ctx.name) throw new InvalidArgumentError(`${source}: contexts[${i}].name is required`, `contexts[${i}].name`);
    return { name: ctx.name as string, endpoint: ctx.endpoint as string | undefined, token: ctx.token as string | undefined, ca: ctx.ca as string | undefined };
  });
  return { 'current-context': current as string | undefined, contexts };
}

export function loadConfig(file = configPath()): ClientConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { contexts: [] };
    throw err;
  }
  return parseConfig(text, file);
}

/**
 * Flags beat environment beats the config file's context beats the default endpoint; for the
 * endpoint: --api-endpoint, N0STACK_API_ENDPOINT, N0CLI_API_ENDPOINT, the context, 127.0.0.1:20180.
 */
export function resolveConnection(config: ClientConfig, flags: ConnectionFlags, env: NodeJS.ProcessEnv): Connection {
  const contextName = flags.context ?? config['current-context'];
  let context: Context | undefined;
  if (contextName !== undefined) {
    context = config.contexts.find((c) => c.name === contextName);
    if (!context && flags.context !== undefined) {
      const known = config.contexts.map((c) => c.name);
      throw new InvalidArgumentError(`context "${contextName}" is not in the config${known.length ? ` (contexts: ${known.join(', ')})` : ''}`, '--context');
    }
  }
  const from = `context "${contextName}"`;
  const pick = (flag: string | undefined, flagName: string, envNames: string | string[], ctxValue: string | undefined): [string | undefined, string | undefined] => {
    if (flag) return [flag, flagName];
    for (const envName of typeof envNames === 'string' ? [envNames] : envNames) if (env[envName]) return [env[envName], envName];
    if (ctxValue) return [ctxValue, from];
    return [undefined, undefined];
  };
  // N0CLI_API_ENDPOINT is the original n0cli's variable, honoured for users switching; ours wins.
  const [endpoint, endpointSource] = pick(flags.apiEndpoint, '--api-endpoint', ['N0STACK_API_ENDPOINT', 'N0CLI_API_ENDPOINT'], context?.endpoint);
  const [token, tokenSource] = pick(flags.token, '--token-file', 'N0STACK_TOKEN', context?.token);
  const [ca, caSource] = pick(flags.ca, '--ca', 'N0STACK_CA', context?.ca);
  return {
    endpoint: endpoint ?? DEFAULT_ENDPOINT,
    token,
    ca,
    context: context?.name,
    sources: { endpoint: endpointSource ?? 'default', token: tokenSource, ca: caSource },
  };
}

/** A bearer token file: its first line, trimmed; an empty or unreadable file is a usage error. */
export function readTokenFile(file: string): string {
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch (err) {
    throw new InvalidArgumentError(`token file ${file}: ${(err as Error).message}`, '--token-file');
  }
  const token = text.split('\n')[0].trim();
  if (!token) throw new InvalidArgumentError(`token file ${file} is empty`, '--token-file');
  return token;
}

export function redactToken(token: string | undefined): string | undefined {
  return token ? 'REDACTED' : token;
}

/** The config for printing: tokens redacted. */
export function redactedConfig(config: ClientConfig): ClientConfig {
  return { ...config, contexts: config.contexts.map((c) => ({ ...c, ...(c.token ? { token: redactToken(c.token) } : {}) })) };
}

function writeConfig(file: string, config: ClientConfig): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  // The file holds a bearer token: write it private and replace it atomically.
  const tmp = `${file}.${process.pid}.tmp`;
  const clean: ClientConfig = {
    ...(config['current-context'] ? { 'current-context': config['current-context'] } : {}),
    contexts: config.contexts.map((c) => Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)) as unknown as Context),
  };
  fs.writeFileSync(tmp, YAML.stringify(clean), { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/**
 * Adds or replaces one context and makes it current; for `n0stack up`, which hands the user a
 * working n0ctl. Other contexts in the file are kept.
 */
export function writeClientConfig(file: string, conn: { endpoint: string; token?: string; ca?: string }, contextName = DEFAULT_CONTEXT): void {
  const config = loadConfig(file);
  const context: Context = { name: contextName, endpoint: conn.endpoint, token: conn.token, ca: conn.ca };
  const index = config.contexts.findIndex((c) => c.name === contextName);
  if (index >= 0) config.contexts[index] = context;
  else config.contexts.push(context);
  config['current-context'] = contextName;
  writeConfig(file, config);
}

export function useContext(file: string, name: string): void {
  const config = loadConfig(file);
  if (!config.contexts.some((c) => c.name === name)) {
    const known = config.contexts.map((c) => c.name);
    throw new InvalidArgumentError(`context "${name}" is not in ${file}${known.length ? ` (contexts: ${known.join(', ')})` : ' (it has no contexts)'}`, 'context');
  }
  config['current-context'] = name;
  writeConfig(file, config);
}
