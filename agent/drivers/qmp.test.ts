import { classifyQmpMessage, encodeQmpCommand, splitQmpLines } from './qmp';

describe('splitQmpLines', () => {
  it('keeps a partial line for the next chunk and strips CRLF', () => {
    const first = splitQmpLines('{"QMP": {}}\r\n{"return": {}, "id": "n0-1"}\r\n{"event": "ST');
    expect(first.lines).toEqual(['{"QMP": {}}', '{"return": {}, "id": "n0-1"}']);
    expect(first.rest).toBe('{"event": "ST');
    const second = splitQmpLines(`${first.rest}OP", "data": {}}\r\n`);
    expect(second.lines).toEqual(['{"event": "STOP", "data": {}}']);
    expect(second.rest).toBe('');
  });

  it('ignores blank lines', () => {
    expect(splitQmpLines('\r\n\n{"return": 1}\n').lines).toEqual(['{"return": 1}']);
  });
});

describe('classifyQmpMessage', () => {
  it('recognizes a greeting with its capabilities', () => {
    const msg = classifyQmpMessage({ QMP: { version: { qemu: { major: 7 } }, capabilities: ['oob'] } });
    expect(msg).toEqual({ kind: 'greeting', version: { qemu: { major: 7 } }, capabilities: ['oob'] });
  });

  it('recognizes returns and errors with their ids', () => {
    expect(classifyQmpMessage({ return: { status: 'running' }, id: 'n0-2' })).toEqual({ kind: 'return', id: 'n0-2', value: { status: 'running' } });
    expect(classifyQmpMessage({ error: { class: 'GenericError', desc: 'nope' }, id: 'n0-3' }))
      .toEqual({ kind: 'error', id: 'n0-3', errorClass: 'GenericError', desc: 'nope' });
  });

  it('recognizes events and defaults missing data to {}', () => {
    const msg = classifyQmpMessage({ event: 'SHUTDOWN', data: { guest: true, reason: 'guest-shutdown' }, timestamp: { seconds: 1, microseconds: 2 } });
    expect(msg).toMatchObject({ kind: 'event', event: 'SHUTDOWN', data: { guest: true, reason: 'guest-shutdown' } });
    expect(classifyQmpMessage({ event: 'STOP' })).toMatchObject({ kind: 'event', event: 'STOP', data: {} });
  });

  it('marks anything else unknown', () => {
    expect(classifyQmpMessage(42).kind).toBe('unknown');
    expect(classifyQmpMessage({ foo: 1 }).kind).toBe('unknown');
  });
});

describe('encodeQmpCommand', () => {
  it('adds arguments only when there are some, and ends with CRLF', () => {
    expect(encodeQmpCommand('stop', undefined, 'n0-1')).toBe('{"execute":"stop","id":"n0-1"}\r\n');
    expect(encodeQmpCommand('stop', {}, 'n0-1')).toBe('{"execute":"stop","id":"n0-1"}\r\n');
    expect(JSON.parse(encodeQmpCommand('send-key', { keys: [{ type: 'qcode', data: 'ctrl' }] }, 'x')))
      .toEqual({ execute: 'send-key', arguments: { keys: [{ type: 'qcode', data: 'ctrl' }] }, id: 'x' });
  });
});
