// The real Debian cloud guest for end-to-end tests: hack/guest-image.sh builds it with
// hack/build-guest-image.sh (debootstrap from the Debian mirror, several minutes) the first time
// and whenever that script changes, and otherwise answers with the cached file at once.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DeadlineExceededError, FailedPreconditionError } from '../api/errors';

const REPO = path.resolve(__dirname, '..');
export const GUEST_IMAGE_SCRIPT = path.join(REPO, 'hack', 'guest-image.sh');
/** A cold build measured ~5 minutes on the 2-core test machine; this leaves room for a slow mirror. */
export const GUEST_IMAGE_BUILD_TIMEOUT_MS = 20 * 60_000;

export interface EnsureGuestImageOptions {
  timeoutMs?: number;
  /** Called with each progress line of the build (stderr of the scripts). */
  onProgress?: (line: string) => void;
}

/** Path of the cached guest qcow2 (absolute), building it first when needed. */
export function ensureGuestImage(options: EnsureGuestImageOptions = {}): Promise<string> {
  const timeoutMs = options.timeoutMs ?? GUEST_IMAGE_BUILD_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    // detached: the script and its debootstrap form one process group that a timeout ends whole.
    const child = spawn(GUEST_IMAGE_SCRIPT, [], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let errTail = '';
    let pending = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      errTail = (errTail + d).slice(-4000);
      pending += d;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) options.onProgress?.(line);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      try { process.kill(-child.pid!, 'SIGTERM'); } catch { /* already gone */ }
    }, timeoutMs);
    child.once('error', (err) => { clearTimeout(timer); reject(err); });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (timedOut) return reject(new DeadlineExceededError(`guest image build did not finish within ${timeoutMs} ms: ${errTail.slice(-500)}`));
      if (code !== 0) return reject(new FailedPreconditionError(`${GUEST_IMAGE_SCRIPT} failed (exit ${code}): ${errTail.slice(-1500)}`, 'guest_image'));
      const image = stdout.trim().split('\n').pop() ?? '';
      if (!path.isAbsolute(image) || !image.endsWith('.qcow2') || !fs.existsSync(image)) {
        return reject(new FailedPreconditionError(`${GUEST_IMAGE_SCRIPT} printed ${JSON.stringify(image)}, not an existing qcow2 path`, 'guest_image'));
      }
      resolve(image);
    });
  });
}
