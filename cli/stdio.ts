// Ending a CLI process without losing output or dying on a closed pipe. Node writes to a pipe
// asynchronously once the kernel's pipe buffer is full, so process.exit() right after a large
// write cuts it off; and a reader that goes away (`n0ctl ... | head`) makes the next write fail
// with EPIPE, which Node reports as an unhandled 'error' with a stack trace.
import type { Writable } from 'node:stream';

const CLOSED_CODES = new Set(['EPIPE', 'ERR_STREAM_DESTROYED']);

/**
 * Calls onClosed (once) when the reader of `stream` has gone away. Any other write error is
 * passed to onError. Like ripgrep, a reader that stopped reading is not a failure of ours.
 */
export function onReaderGone(stream: Writable, onClosed: () => void, onError: (err: Error) => void = () => undefined): void {
  let called = false;
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (CLOSED_CODES.has(err.code ?? '')) {
      if (!called) { called = true; onClosed(); }
    } else onError(err);
  });
}

/** Resolves once everything written to `stream` so far has reached the OS (or the stream is gone). */
export function flushed(stream: Writable): Promise<void> {
  if (stream.destroyed || stream.writableEnded || stream.writableLength === 0) return Promise.resolve();
  // A write's callback runs after every earlier write has completed, in order.
  return new Promise((resolve) => { stream.write('', () => resolve()); });
}

/** Exits with `code` after stdout and stderr have been flushed. */
export async function exitAfterFlush(code: number, streams: Writable[] = [process.stdout, process.stderr], exit: (code: number) => never = process.exit): Promise<never> {
  await Promise.all(streams.map(flushed));
  return exit(code);
}
