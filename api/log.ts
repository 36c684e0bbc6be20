// One winston logger for every process: JSON lines when stderr is not a TTY (for collectors),
// readable colored lines on a TTY. Level from --log-level or N0STACK_LOG_LEVEL (default info).
import winston from 'winston';

export type Logger = winston.Logger;

let root: winston.Logger | undefined;

export function createLogger(options: { level?: string; json?: boolean } = {}): winston.Logger {
  const level = options.level ?? process.env.N0STACK_LOG_LEVEL ?? 'info';
  const json = options.json ?? !process.stderr.isTTY;
  const format = json
    ? winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: true }), winston.format.json())
    : winston.format.combine(
        winston.format.colorize(),
        winston.format.timestamp({ format: 'HH:mm:ss.SSS' }),
        winston.format.errors({ stack: true }),
        winston.format.printf(({ timestamp, level: lvl, message, component, ...rest }) => {
          const extra = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : '';
          return `${timestamp} ${lvl} ${component ? `[${component}] ` : ''}${message}${extra}`;
        }),
      );
  return winston.createLogger({
    level,
    format,
    // stderr keeps stdout free for command output (n0ctl tables, printed configs).
    transports: [new winston.transports.Console({ stderrLevels: Object.keys(winston.config.npm.levels) })],
  });
}

export function setRootLogger(logger: winston.Logger): void { root = logger; }

export function logger(component?: string): winston.Logger {
  root ??= createLogger();
  return component ? root.child({ component }) : root;
}
