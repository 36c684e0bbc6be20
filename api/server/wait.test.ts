import { replyDeadline } from './wait';

test('the facade answers a waiting call before its caller gives up', () => {
  const now = 1_000_000;
  expect(replyDeadline(now + 20_000, now)).toBe(now + 19_000);
  expect(replyDeadline(now + 120_000, now)).toBe(now + 119_000);
  // Short deadlines keep most of their time: a tenth of it is the margin.
  expect(replyDeadline(now + 2_000, now)).toBe(now + 1_800);
  expect(replyDeadline(now + 1, now)).toBeCloseTo(now + 0.9);
  // Already past: no margin to take.
  expect(replyDeadline(now - 5, now)).toBe(now - 5);
});
