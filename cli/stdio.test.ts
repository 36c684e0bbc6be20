import { Writable } from 'node:stream';
import { exitAfterFlush, flushed, onReaderGone } from './stdio';

/** A stream whose writes complete only when the test says so, like a pipe nobody reads. */
function slowSink() {
  const pending: (() => void)[] = [];
  const chunks: string[] = [];
  const stream = new Writable({
    highWaterMark: 4,
    write(chunk: Buffer, _enc, cb) { pending.push(() => { chunks.push(chunk.toString()); cb(); }); },
  });
  return { stream, chunks, drainOne: () => pending.shift()?.() };
}
const tick = () => new Promise((r) => setImmediate(r));

describe('flushed / exitAfterFlush', () => {
  it('waits until every earlier write has completed before exiting', async () => {
    const sink = slowSink();
    sink.stream.write('first ');
    sink.stream.write('second');
    const exits: number[] = [];
    const done = exitAfterFlush(3, [sink.stream], ((code: number) => { exits.push(code); }) as (code: number) => never);
    await tick();
    expect(exits).toEqual([]);
    sink.drainOne();
    await tick();
    expect(exits).toEqual([]);
    for (let i = 0; i < 3; i++) { sink.drainOne(); await tick(); } // 'second' and the flush marker
    await done;
    expect(sink.chunks.join('')).toBe('first second');
    expect(exits).toEqual([3]);
  });

  it('resolves at once when nothing is buffered or the stream is gone', async () => {
    const idle = new Writable({ write(_c, _e, cb) { cb(); } });
    await expect(flushed(idle)).resolves.toBeUndefined();
    const gone = slowSink().stream;
    gone.write('x');
    gone.destroy();
    await expect(flushed(gone)).resolves.toBeUndefined();
  });
});

describe('onReaderGone', () => {
  it('calls onClosed once for EPIPE and passes other errors on', () => {
    const stream = new Writable({ write(_c, _e, cb) { cb(); } });
    const closed: number[] = [];
    const others: string[] = [];
    onReaderGone(stream, () => closed.push(1), (e) => others.push(e.message));
    stream.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    stream.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    stream.emit('error', Object.assign(new Error('write EIO'), { code: 'EIO' }));
    expect(closed).toEqual([1]);
    expect(others).toEqual(['write EIO']);
  });
});
