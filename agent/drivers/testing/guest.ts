// A tiny test guest: Debian's kernel plus an initramfs made of busybox-static, the virtio/ACPI
// modules it needs and an /init script. It boots in seconds under TCG, prints a marker on the serial
// console, configures eth0 from the kernel command line and leaves a shell on ttyS0, so tests can
// drive a real VM without a disk image or a network download.
//
// What the guest does with the host's lifecycle requests:
// - ACPI powerdown (QMP system_powerdown): busybox acpid sees the power button (button.ko + evdev)
//   and runs `poweroff -f`, so QEMU exits cleanly.
// - ctrl-alt-delete (QMP send-key): /proc/sys/kernel/ctrl-alt-del is 1, so the kernel reboots at once.
// - system_reset / quit: handled by QEMU alone, the guest has no say.
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FailedPreconditionError, InvalidArgumentError } from '../../../api/errors';
import { run } from '../../exec';

export const GUEST_READY_MARKER = 'N0STACK-GUEST-READY';

/** Bump when the layout of the initramfs changes, so cached images are rebuilt. */
const GUEST_FORMAT = 9;

/** Modules by name; their dependencies come from modules.dep. */
// pvpanic_mmio: the guest tells QEMU when its kernel panics (the agent reports GuestCrashed).
export const GUEST_MODULES = ['virtio_pci', 'virtio_blk', 'virtio_net', 'button', 'evdev', 'pvpanic_mmio'] as const;

const MODULE_SUFFIX = /\.ko(\.(xz|gz|zst))?$/;

function moduleName(relPath: string): string {
  return path.basename(relPath).replace(MODULE_SUFFIX, '').replace(/-/g, '_');
}

/**
 * Load order (dependencies first, each once) of `wanted` modules, as paths relative to the
 * modules dir, from the text of modules.dep. Names in `builtin` (modules.builtin) are skipped;
 * a module that is neither a module nor built in is an error naming it.
 */
export function resolveModules(modulesDep: string, wanted: readonly string[], builtin = ''): string[] {
  const deps = new Map<string, { file: string; deps: string[] }>();
  for (const line of modulesDep.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const file = line.slice(0, colon).trim();
    const rest = line.slice(colon + 1).trim();
    deps.set(moduleName(file), { file, deps: rest ? rest.split(/\s+/) : [] });
  }
  const builtins = new Set(builtin.split('\n').filter(Boolean).map(moduleName));
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (name: string, chain: string[]): void => {
    if (seen.has(name)) return;
    const entry = deps.get(name);
    if (!entry) {
      if (builtins.has(name)) { seen.add(name); return; }
      throw new FailedPreconditionError(`kernel module ${name} is neither in modules.dep nor built in`, 'modules');
    }
    if (chain.includes(name)) throw new FailedPreconditionError(`module dependency cycle: ${[...chain, name].join(' -> ')}`, 'modules');
    for (const dep of entry.deps) visit(moduleName(dep), [...chain, name]);
    seen.add(name);
    order.push(entry.file);
  };
  for (const name of wanted) visit(name.replace(/-/g, '_'), []);
  return order;
}

/** Kernel version of a /boot/vmlinuz-<version> file name. */
export function kernelVersionOf(kernelPath: string): string {
  const m = /^vmlinuz-(.+)$/.exec(path.basename(kernelPath));
  if (!m) throw new InvalidArgumentError(`kernel ${kernelPath} is not named vmlinuz-<version>`, 'kernel');
  return m[1];
}

/** Compares kernel versions like `sort -V` (numeric runs as numbers). */
export function compareKernelVersions(a: string, b: string): number {
  const pa = a.split(/(\d+)/);
  const pb = b.split(/(\d+)/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    if (x === y) continue;
    if (i % 2 === 1) return (Number(x) || 0) - (Number(y) || 0);
    return x < y ? -1 : 1;
  }
  return 0;
}

/** The newest /boot/vmlinuz-* that has a modules dir. */
export function newestKernel(bootDir = '/boot', modulesRoot = '/lib/modules'): string {
  const versions = fs.readdirSync(bootDir)
    .filter((f) => f.startsWith('vmlinuz-'))
    .map((f) => kernelVersionOf(f))
    .filter((v) => fs.existsSync(path.join(modulesRoot, v)))
    .sort(compareKernelVersions);
  if (!versions.length) throw new FailedPreconditionError(`no ${bootDir}/vmlinuz-* with modules under ${modulesRoot}; install linux-image-amd64`, 'kernel');
  return path.join(bootDir, `vmlinuz-${versions[versions.length - 1]}`);
}

/** The guest's /init. Kernel parameters: n0ip=<addr/prefix> n0gw=<gateway> n0hostname=<name>. */
export function guestInitScript(): string {
  return `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /tmp /run
mount -t devpts devpts /dev/pts
for m in $(cat /lib/modules/load-order); do insmod "/lib/modules/$m" || echo "n0guest: insmod $m failed"; done
# ctrl-alt-delete (QMP send-key) reboots at once: the soft reboot of this guest.
echo 1 > /proc/sys/kernel/ctrl-alt-del
ip link set lo up
n0ip=; n0gw=; n0hostname=n0guest
for p in $(cat /proc/cmdline); do
  case "$p" in
    n0ip=*) n0ip="\${p#n0ip=}" ;;
    n0gw=*) n0gw="\${p#n0gw=}" ;;
    n0hostname=*) n0hostname="\${p#n0hostname=}" ;;
  esac
done
hostname "$n0hostname"
if [ -n "$n0ip" ]; then
  i=0
  while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  ip addr add "$n0ip" dev eth0 && ip link set eth0 up || echo "n0guest: cannot configure eth0 with $n0ip"
  [ -n "$n0gw" ] && ip route add default via "$n0gw"
fi
# ACPI power button (QMP system_powerdown) -> /etc/acpi/PWRF/00000080 -> poweroff -f. acpid quits
# when it finds no input device, so wait (bounded) for the button's event node first.
i=0; ev=
while [ -z "$ev" ] && [ $i -lt 100 ]; do
  ev=$(awk '/Power Button/ { f = 1 } f && /^H:/ { for (j = 1; j <= NF; j++) if ($j ~ /^event/) print $j; exit }' /proc/bus/input/devices 2>/dev/null)
  [ -n "$ev" ] && [ ! -e "/dev/input/$ev" ] && ev=
  [ -z "$ev" ] && sleep 0.1
  i=$((i+1))
done
[ -n "$ev" ] || echo "n0guest: no ACPI power button; soft powerdown will not work"
acpid -f -c /etc/acpi -l /tmp/acpid.log </dev/null >/dev/console 2>&1 &
# A button press before acpid has opened the device would be lost: wait (bounded) until it has.
i=0
while [ -n "$ev" ] && [ $i -lt 100 ] && ! ls -l /proc/$!/fd 2>/dev/null | grep -q "/dev/input/$ev"; do sleep 0.05; i=$((i+1)); done
echo ${GUEST_READY_MARKER}
while true; do setsid cttyhack sh -l; sleep 1; done
`;
}

const POWER_BUTTON_HANDLER = '#!/bin/sh\necho "n0guest: power button, powering off" > /dev/console\nsync\npoweroff -f\n';

export interface TestGuest {
  kernel: string;
  initrd: string;
  /** Kernel command line the guest expects (serial console); append n0ip=... etc. */
  cmdline: string;
}

export interface TestGuestOptions {
  /** Default: <os.tmpdir()>/n0stack-test-guest */
  cacheDir?: string;
  /** Default: the newest /boot/vmlinuz-* */
  kernel?: string;
  busybox?: string;
  modulesRoot?: string;
}

/** Identity of an input file for cache keys: path, size and mtime. */
export function fileStamp(file: string): string {
  const st = fs.statSync(file);
  return `${file}:${st.size}:${st.mtimeMs}`;
}

/** Builds (once per distinct input, cached) the test guest's initramfs. */
export async function buildTestGuest(options: TestGuestOptions = {}): Promise<TestGuest> {
  const cacheDir = options.cacheDir ?? path.join(os.tmpdir(), 'n0stack-test-guest');
  const kernel = options.kernel ?? newestKernel();
  const busybox = options.busybox ?? '/bin/busybox';
  const modulesRoot = options.modulesRoot ?? '/lib/modules';
  if (!fs.existsSync(busybox)) throw new FailedPreconditionError(`${busybox} is missing; install busybox-static`, 'busybox');
  const modulesDir = path.join(modulesRoot, kernelVersionOf(kernel));
  const modulesDep = fs.readFileSync(path.join(modulesDir, 'modules.dep'), 'utf8');
  const builtinFile = path.join(modulesDir, 'modules.builtin');
  const builtin = fs.existsSync(builtinFile) ? fs.readFileSync(builtinFile, 'utf8') : '';
  const modules = resolveModules(modulesDep, GUEST_MODULES, builtin);
  const init = guestInitScript();

  const key = createHash('sha256')
    .update(JSON.stringify([GUEST_FORMAT, fileStamp(kernel), fileStamp(busybox), modules.map((m) => fileStamp(path.join(modulesDir, m))), init, POWER_BUTTON_HANDLER]))
    .digest('hex').slice(0, 16);
  const outDir = path.join(cacheDir, key);
  const initrd = path.join(outDir, 'initrd.cpio');
  const result: TestGuest = { kernel, initrd, cmdline: 'console=ttyS0 quiet' };
  if (fs.existsSync(initrd)) return result;

  fs.mkdirSync(outDir, { recursive: true });
  const stage = fs.mkdtempSync(path.join(outDir, 'stage-'));
  try {
    for (const dir of ['bin', 'dev', 'proc', 'sys', 'tmp', 'root', 'etc/acpi/PWRF', 'lib/modules']) {
      fs.mkdirSync(path.join(stage, dir), { recursive: true });
    }
    fs.copyFileSync(busybox, path.join(stage, 'bin/busybox'));
    fs.chmodSync(path.join(stage, 'bin/busybox'), 0o755);
    fs.writeFileSync(path.join(stage, 'init'), init, { mode: 0o755 });
    fs.writeFileSync(path.join(stage, 'etc/acpi/PWRF/00000080'), POWER_BUTTON_HANDLER, { mode: 0o755 });
    const loadOrder: string[] = [];
    for (const rel of modules) {
      const src = path.join(modulesDir, rel);
      const base = path.basename(rel);
      const plain = base.replace(MODULE_SUFFIX, '.ko');
      const dst = path.join(stage, 'lib/modules', plain);
      // busybox insmod cannot read compressed modules.
      if (base.endsWith('.ko.xz')) {
        const { stdout } = await runBinary('xz', ['-d', '-c', src]);
        fs.writeFileSync(dst, stdout);
      } else if (base.endsWith('.ko.zst')) {
        const { stdout } = await runBinary('zstd', ['-d', '-c', src]);
        fs.writeFileSync(dst, stdout);
      } else if (base.endsWith('.ko.gz')) {
        const { stdout } = await runBinary('gzip', ['-d', '-c', src]);
        fs.writeFileSync(dst, stdout);
      } else {
        fs.copyFileSync(src, dst);
      }
      loadOrder.push(plain);
    }
    fs.writeFileSync(path.join(stage, 'lib/modules/load-order'), `${loadOrder.join('\n')}\n`);

    const tmp = path.join(outDir, `initrd.cpio.${process.pid}.tmp`);
    await cpio(stage, listTree(stage), tmp);
    fs.renameSync(tmp, initrd);
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
  // Sanity: the archive must list /init, or the kernel would panic far from here.
  const { stdout } = await run('cpio', ['-t', '-F', initrd], { timeoutMs: 30_000 });
  if (!stdout.split('\n').includes('init')) throw new FailedPreconditionError(`built ${initrd} has no /init`, 'initrd');
  return result;
}

/** Relative paths of every entry under `root`, parents before children (cpio's expected order). */
/** Every path below root, sorted, relative to it (the cpio file list). */
export function listTree(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const entry of fs.readdirSync(path.join(root, rel), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      out.push(child);
      if (entry.isDirectory()) walk(child);
    }
  };
  walk('');
  return out;
}

function runBinary(file: string, args: string[]): Promise<{ stdout: Buffer }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    child.on('error', reject);
    child.on('close', (code) => code === 0
      ? resolve({ stdout: Buffer.concat(chunks) })
      : reject(new FailedPreconditionError(`${file} ${args.join(' ')} failed (exit ${code}): ${stderr.trim()}`, 'modules')));
  });
}

/** `cpio -o -H newc` in `cwd` with the file list on stdin, written to `out`. */
function cpio(cwd: string, files: string[], out: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fd = fs.openSync(out, 'w');
    const child = spawn('cpio', ['-o', '-H', 'newc', '-R', '0:0', '--quiet'], { cwd, stdio: ['pipe', fd, 'pipe'], timeout: 60_000 });
    fs.closeSync(fd);
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => { stderr += c.toString(); });
    child.on('error', (err) => { fs.rmSync(out, { force: true }); reject(err); });
    child.on('close', (code) => {
      if (code === 0) return resolve();
      fs.rmSync(out, { force: true });
      reject(new FailedPreconditionError(`cpio failed (exit ${code}): ${stderr.trim()}`, 'initrd'));
    });
    child.stdin?.end(`${files.join('\n')}\n`);
  });
}
