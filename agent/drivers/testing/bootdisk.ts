// A tiny BIOS-bootable qcow2 disk for tests: a FAT "superfloppy" (no partition table) holding
// Debian's kernel, a busybox initramfs and syslinux, so QEMU's SeaBIOS boots it like any cloud
// image from a BlockStorage disk, without direct kernel boot. Built in seconds from Debian
// packages (dosfstools, mtools, syslinux) without mounting anything, and cached by its inputs.
//
// The guest behaves like a very small cloud guest, so the control plane's cloud-init path is
// exercised for real:
// - it prints N0STACK-GUEST-READY once its modules are in and the ACPI power button works
//   (busybox acpid runs `poweroff -f`, so QMP system_powerdown stops it cleanly; ctrl-alt-delete
//   reboots at once, as in guest.ts);
// - it finds the NoCloud seed by the ISO volume label "cidata" (AHCI CD-ROM of the q35 machine),
//   configures each interface of `network-config` (v2, matched by MAC: static addresses, default
//   route, MTU, set-name) with busybox ip, printing `N0STACK-NET-CONFIGURED <ipv4>`, sets the
//   hostname from meta-data's local-hostname, serves it with busybox httpd on port 80, and prints
//   N0STACK-CLOUDINIT-DONE (also when no seed was found, after a line saying so);
// - user-data is not applied (no users, keys or passwords) and dhcp4: true is ignored;
// - it keeps a root shell on the serial console.
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FailedPreconditionError, InvalidArgumentError } from '../../../api/errors';
import { logger } from '../../../api/log';
import { run } from '../../exec';
import { fileStamp, GUEST_MODULES, GUEST_READY_MARKER, kernelVersionOf, listTree, newestKernel, resolveModules } from './guest';

const log = logger('bootdisk');

export const CLOUDINIT_DONE_MARKER = 'N0STACK-CLOUDINIT-DONE';
export const NET_CONFIGURED_MARKER = 'N0STACK-NET-CONFIGURED';

/** Bump when the disk's layout or the guest's scripts change in a way the hash cannot see. */
const BOOTDISK_FORMAT = 1;

/**
 * The guest's modules: guest.ts's virtio/ACPI set plus what reading the seed CD-ROM needs on
 * QemuDriver's q35 machine (IDE drives there sit on the ICH9 AHCI controller). Dependencies
 * (libahci, libata, scsi_mod, cdrom) come from modules.dep.
 */
export const BOOTDISK_MODULES = [...GUEST_MODULES, 'ahci', 'sr_mod', 'isofs'] as const;

const MODULE_SUFFIX = /\.ko(\.(xz|gz|zst))?$/;
const DECOMPRESSORS: Record<string, string> = { '.ko.xz': 'xz', '.ko.gz': 'gzip', '.ko.zst': 'zstd' };
const MiB = 1024 * 1024;
/** Characters a test may append to the kernel command line (it is syslinux config text). */
const KERNEL_ARGS = /^[A-Za-z0-9=_.,:/+ -]*$/;

/**
 * Reads netplan-style network config v2 (the narrow YAML our renderer writes, plus `network:`
 * wrapping, inline lists/match, gateway4 and mtu) and prints one line per ethernets entry:
 * `name mac set-name addresses(comma-separated) gateway mtu`, "-" for what is absent.
 */
export const NETWORK_CONFIG_AWK = String.raw`function unquote(s) {
  sub(/^[ \t]+/, "", s); sub(/[ \t]+#.*$/, "", s); sub(/[ \t]+$/, "", s)
  if (s ~ /^".*"$/ || s ~ /^'.*'$/) s = substr(s, 2, length(s) - 2)
  return s
}
function dash(s) { return s == "" ? "-" : s }
function flush() {
  if (name != "") print name, dash(mac), dash(setname), dash(addrs), dash(gw), dash(mtu)
  name = ""; mac = ""; setname = ""; addrs = ""; gw = ""; mtu = ""; rto = ""; rvia = ""
}
function addaddr(a) { a = unquote(a); if (a != "") addrs = addrs == "" ? a : addrs "," a }
{
  sub(/\r$/, "")
  if ($0 ~ /^[ \t]*(#.*)?$/) next
  match($0, /^ */); ind = RLENGTH; line = substr($0, ind + 1)
  item = 0
  if (line ~ /^-( |$)/) { item = 1; line = substr(line, 2); match(line, /^ */); ind += 1 + RLENGTH; line = substr(line, RLENGTH + 1) }
  while (n > 0 && sind[n] >= ind) n--
  p = ""; for (i = 1; i <= n; i++) p = p "/" skey[i]
  sub(/^\/network/, "", p)
  k = ""; v = line
  if (match(line, /^[^ "'\[{][^:]*:( |$)/)) { k = substr(line, 1, RLENGTH); sub(/: ?$/, "", k); v = substr(line, RLENGTH + 1) }
  v = unquote(v)
  if (k != "" && v == "") { n++; sind[n] = ind; skey[n] = k }
  if (p == "/ethernets" && k != "") { flush(); name = k; next }
  if (name == "") next
  base = "/ethernets/" name
  if (p == base "/match" && k == "macaddress") mac = tolower(v)
  else if (p == base && k == "match" && match(v, /macaddress: *[^,} ]+/)) mac = tolower(unquote(substr(v, RSTART + 11, RLENGTH - 11)))
  else if (p == base && k == "set-name") setname = v
  else if (p == base && k == "mtu") mtu = v
  else if (p == base && k == "gateway4") gw = v
  else if (p == base && k == "addresses" && v ~ /^\[/) { gsub(/\[|\]/, "", v); c = split(v, parts, ","); for (i = 1; i <= c; i++) addaddr(parts[i]) }
  else if (p == base "/addresses" && item && k == "") addaddr(v)
  else if (p == base "/routes") {
    if (item) { rto = ""; rvia = "" }
    if (k == "to") rto = v
    if (k == "via") rvia = v
    if ((rto == "0.0.0.0/0" || rto == "default") && rvia ~ /^[0-9.]+$/) gw = rvia
  }
}
END { flush() }
`;

/** Prints meta-data's local-hostname, unquoted. */
export const META_DATA_AWK = String.raw`/^local-hostname:/ {
  v = $0; sub(/^local-hostname:[ \t]*/, "", v); sub(/[ \t]+#.*$/, "", v); sub(/[ \t]+$/, "", v)
  if (v ~ /^".*"$/ || v ~ /^'.*'$/) v = substr(v, 2, length(v) - 2)
  print v; exit
}
`;

// acpid gives handlers no console, so the handler writes to it itself.
const POWER_BUTTON_HANDLER = '#!/bin/sh\necho "n0boot: power button, powering off" > /dev/console\nsync\npoweroff -f\n';

/** The guest's /init (busybox sh). */
export function bootDiskInitScript(): string {
  return `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /tmp /run /mnt/cidata /www
mount -t devpts devpts /dev/pts
for m in $(cat /lib/modules/load-order); do insmod "/lib/modules/$m" || echo "n0boot: insmod $m failed"; done
# ctrl-alt-delete (QMP send-key) reboots at once: the soft reboot of this guest.
echo 1 > /proc/sys/kernel/ctrl-alt-del
ip link set lo up
hostname n0boot
# ACPI power button (QMP system_powerdown) -> /etc/acpi/PWRF/00000080 -> poweroff -f. acpid quits
# when it finds no input device, so wait (bounded) for the button's event node first.
i=0; ev=
while [ -z "$ev" ] && [ $i -lt 100 ]; do
  ev=$(awk '/Power Button/ { f = 1 } f && /^H:/ { for (j = 1; j <= NF; j++) if ($j ~ /^event/) print $j; exit }' /proc/bus/input/devices 2>/dev/null)
  [ -n "$ev" ] && [ ! -e "/dev/input/$ev" ] && ev=
  [ -z "$ev" ] && sleep 0.1
  i=$((i+1))
done
[ -n "$ev" ] || echo "n0boot: no ACPI power button; soft powerdown will not work"
acpid -f -c /etc/acpi -l /tmp/acpid.log </dev/null >/dev/console 2>&1 &
echo ${GUEST_READY_MARKER}

# The NoCloud seed is the block device whose ISO 9660 volume id (32 bytes at 32808) is cidata.
find_seed() {
  for d in /dev/sr* /dev/vd* /dev/sd*; do
    [ -b "$d" ] || continue
    label=$(dd if="$d" bs=1 skip=32808 count=32 2>/dev/null | tr -d ' ' | tr A-Z a-z)
    [ "$label" = cidata ] && { echo "$d"; return 0; }
  done
  return 1
}

configure_nics() {
  awk -f /etc/n0boot/network-config.awk "$1" > /tmp/nics || { echo "n0boot: cannot parse $1"; return 1; }
  while read -r name mac setname addrs gw mtu; do
    dev=; i=0
    while [ -z "$dev" ] && [ $i -lt 50 ]; do
      for d in /sys/class/net/*; do
        n=\${d##*/}
        if [ "$mac" = - ]; then [ "$n" = "$name" ] && dev=$n
        elif [ "$(cat "$d/address" 2>/dev/null)" = "$mac" ]; then dev=$n; fi
      done
      [ -z "$dev" ] && sleep 0.1
      i=$((i+1))
    done
    if [ -z "$dev" ]; then echo "n0boot: no interface for $name ($mac)"; continue; fi
    if [ "$setname" != - ] && [ "$setname" != "$dev" ]; then
      if ip link set dev "$dev" name "$setname"; then dev=$setname; else echo "n0boot: cannot rename $dev to $setname"; fi
    fi
    if [ "$mtu" != - ]; then ip link set dev "$dev" mtu "$mtu" || echo "n0boot: cannot set mtu $mtu on $dev"; fi
    ip link set dev "$dev" up
    ips=
    for a in $(echo "$addrs" | tr , ' '); do
      [ "$a" = - ] && continue
      if ip addr add "$a" dev "$dev"; then
        case "$a" in *:*) ;; *) ips="$ips \${a%/*}" ;; esac
      else
        echo "n0boot: cannot add $a to $dev"
      fi
    done
    if [ "$gw" != - ]; then ip route add default via "$gw" dev "$dev" || echo "n0boot: cannot add default route via $gw"; fi
    for a in $ips; do echo "${NET_CONFIGURED_MARKER} $a"; done
  done < /tmp/nics
}

seed=; i=0
while [ -z "$seed" ] && [ $i -lt 200 ]; do
  seed=$(find_seed)
  [ -z "$seed" ] && sleep 0.1
  i=$((i+1))
done
if [ -z "$seed" ]; then
  echo "n0boot: no NoCloud seed (ISO labelled cidata) found"
elif ! mount -t iso9660 -o ro "$seed" /mnt/cidata; then
  echo "n0boot: cannot mount the seed $seed"
else
  [ -f /mnt/cidata/network-config ] && configure_nics /mnt/cidata/network-config
  h=$(awk -f /etc/n0boot/meta-data.awk /mnt/cidata/meta-data 2>/dev/null)
  case "$h" in
    "") echo "n0boot: meta-data has no local-hostname" ;;
    *[!A-Za-z0-9.-]*) echo "n0boot: ignoring invalid local-hostname" ;;
    *) hostname "$h" ;;
  esac
  umount /mnt/cidata
fi
hostname > /www/index.html
httpd -p 80 -h /www || echo "n0boot: httpd did not start"
echo ${CLOUDINIT_DONE_MARKER}
while true; do setsid cttyhack sh -l; sleep 1; done
`;
}

/** syslinux.cfg: boot `linux` at once, talking on the first serial port too. */
export function syslinuxConfig(kernelArgs: string): string {
  validateKernelArgs(kernelArgs);
  // SERIAL must be the first directive to catch syslinux's own output.
  return [
    'SERIAL 0 115200',
    'DEFAULT linux',
    'PROMPT 0',
    'TIMEOUT 1',
    'LABEL linux',
    '  KERNEL /vmlinuz',
    '  INITRD /initrd.img',
    `  APPEND ${kernelArgs}`,
    '',
  ].join('\n');
}

export function validateKernelArgs(args: string): string {
  if (typeof args !== 'string' || !KERNEL_ARGS.test(args)) {
    throw new InvalidArgumentError(`kernelArgs ${JSON.stringify(args)} may only hold letters, digits, spaces and = _ . , : / + -`, 'kernelArgs');
  }
  return args;
}

export interface TestBootDiskOptions {
  /** Default: <os.tmpdir()>/n0stack-test-bootdisk (must be an absolute path). */
  cacheDir?: string;
  /** Default: the newest /boot/vmlinuz-* with modules. */
  kernel?: string;
  busybox?: string;
  modulesRoot?: string;
  /** Size of the FAT image (default 64 MiB; 16-1024). */
  sizeMiB?: number;
  /** Appended to `console=ttyS0 quiet`. */
  kernelArgs?: string;
}

const building = new Map<string, Promise<string>>();

/** Builds (once per distinct input, cached) the test boot disk; resolves with its qcow2 path. */
export async function buildTestBootDisk(options: TestBootDiskOptions = {}): Promise<string> {
  const cacheDir = options.cacheDir ?? path.join(os.tmpdir(), 'n0stack-test-bootdisk');
  if (!path.isAbsolute(cacheDir) || path.normalize(cacheDir) !== cacheDir) {
    throw new InvalidArgumentError(`cacheDir ${JSON.stringify(cacheDir)} must be a normalized absolute path`, 'cacheDir');
  }
  const sizeMiB = options.sizeMiB ?? 64;
  if (!Number.isInteger(sizeMiB) || sizeMiB < 16 || sizeMiB > 1024) throw new InvalidArgumentError(`sizeMiB ${sizeMiB} must be an integer 16-1024`, 'sizeMiB');
  const append = `console=ttyS0 quiet${options.kernelArgs ? ` ${validateKernelArgs(options.kernelArgs)}` : ''}`;
  const kernel = options.kernel ?? newestKernel();
  const busybox = options.busybox ?? '/bin/busybox';
  const modulesRoot = options.modulesRoot ?? '/lib/modules';
  if (!fs.existsSync(busybox)) throw new FailedPreconditionError(`${busybox} is missing; install busybox-static`, 'busybox');
  const syslinux = which('syslinux', 'syslinux');

  const modulesDir = path.join(modulesRoot, kernelVersionOf(kernel));
  const modulesDep = fs.readFileSync(path.join(modulesDir, 'modules.dep'), 'utf8');
  const builtinFile = path.join(modulesDir, 'modules.builtin');
  const builtin = fs.existsSync(builtinFile) ? fs.readFileSync(builtinFile, 'utf8') : '';
  const modules = resolveModules(modulesDep, BOOTDISK_MODULES, builtin);
  const init = bootDiskInitScript();
  const cfg = syslinuxConfig(append);

  const key = createHash('sha256')
    .update(JSON.stringify([
      BOOTDISK_FORMAT, sizeMiB, fileStamp(kernel), fileStamp(busybox), fileStamp(syslinux),
      modules.map((m) => fileStamp(path.join(modulesDir, m))), init, cfg, NETWORK_CONFIG_AWK, META_DATA_AWK, POWER_BUTTON_HANDLER,
    ]))
    .digest('hex').slice(0, 16);
  const outDir = path.join(cacheDir, key);
  const disk = path.join(outDir, 'disk.qcow2');
  if (fs.existsSync(disk)) return disk;
  let pending = building.get(disk);
  if (!pending) {
    pending = build({ outDir, disk, key, kernel, busybox, modulesDir, modules, init, cfg, sizeMiB })
      .finally(() => building.delete(disk));
    building.set(disk, pending);
  }
  return pending;
}

interface BuildInput {
  outDir: string;
  disk: string;
  key: string;
  kernel: string;
  busybox: string;
  modulesDir: string;
  modules: string[];
  init: string;
  cfg: string;
  sizeMiB: number;
}

async function build(b: BuildInput): Promise<string> {
  const started = Date.now();
  fs.mkdirSync(b.outDir, { recursive: true });
  const work = fs.mkdtempSync(path.join(b.outDir, 'build-'));
  try {
    const initrd = path.join(work, 'initrd.img');
    await buildInitramfs(b, path.join(work, 'root'), initrd);

    const raw = path.join(work, 'disk.raw');
    const fd = fs.openSync(raw, 'w');
    try { fs.ftruncateSync(fd, b.sizeMiB * MiB); } finally { fs.closeSync(fd); }
    // A volume id from the key keeps the image the same for the same inputs.
    await run('mkfs.vfat', ['-n', 'N0BOOT', '-i', b.key.slice(0, 8), raw], { timeoutMs: 30_000 });
    // No partition table: mtools must not insist on a disk geometry.
    const env = { ...process.env, MTOOLS_SKIP_CHECK: '1' };
    const cfgFile = path.join(work, 'syslinux.cfg');
    fs.writeFileSync(cfgFile, b.cfg);
    for (const [src, dst] of [[b.kernel, '::/vmlinuz'], [initrd, '::/initrd.img'], [cfgFile, '::/syslinux.cfg']]) {
      await run('mcopy', ['-i', raw, '-o', src, dst], { timeoutMs: 60_000, env });
    }
    await run('syslinux', ['--install', raw], { timeoutMs: 30_000, env });
    const { stdout } = await run('mdir', ['-i', raw, '-a', '-b', '::/'], { timeoutMs: 30_000, env });
    for (const f of ['ldlinux.sys', 'vmlinuz', 'initrd.img', 'syslinux.cfg']) {
      if (!stdout.toLowerCase().includes(f)) throw new FailedPreconditionError(`built boot disk lacks ${f}: ${stdout.trim()}`, 'bootdisk');
    }
    const sector = Buffer.alloc(512);
    const rfd = fs.openSync(raw, 'r');
    try { fs.readSync(rfd, sector, 0, 512, 0); } finally { fs.closeSync(rfd); }
    if (sector.readUInt16LE(510) !== 0xaa55) throw new FailedPreconditionError('built boot disk has no boot signature in sector 0', 'bootdisk');

    const tmp = path.join(work, 'disk.qcow2');
    await run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, tmp], { timeoutMs: 60_000 });
    fs.renameSync(tmp, b.disk);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  log.info('test boot disk built', { disk: b.disk, ms: Date.now() - started });
  return b.disk;
}

async function buildInitramfs(b: BuildInput, stage: string, out: string): Promise<void> {
  for (const dir of ['bin', 'dev', 'proc', 'sys', 'tmp', 'root', 'etc/acpi/PWRF', 'etc/n0boot', 'lib/modules']) {
    fs.mkdirSync(path.join(stage, dir), { recursive: true });
  }
  fs.copyFileSync(b.busybox, path.join(stage, 'bin/busybox'));
  fs.chmodSync(path.join(stage, 'bin/busybox'), 0o755);
  fs.writeFileSync(path.join(stage, 'init'), b.init, { mode: 0o755 });
  fs.writeFileSync(path.join(stage, 'etc/acpi/PWRF/00000080'), POWER_BUTTON_HANDLER, { mode: 0o755 });
  fs.writeFileSync(path.join(stage, 'etc/n0boot/network-config.awk'), NETWORK_CONFIG_AWK);
  fs.writeFileSync(path.join(stage, 'etc/n0boot/meta-data.awk'), META_DATA_AWK);
  const loadOrder: string[] = [];
  for (const rel of b.modules) {
    const src = path.join(b.modulesDir, rel);
    const base = path.basename(rel);
    const plain = base.replace(MODULE_SUFFIX, '.ko');
    const dst = path.join(stage, 'lib/modules', plain);
    const suffix = Object.keys(DECOMPRESSORS).find((s) => base.endsWith(s));
    // busybox insmod cannot read compressed modules.
    if (suffix) await spawnToFile(DECOMPRESSORS[suffix], ['-d', '-c', src], dst);
    else fs.copyFileSync(src, dst);
    loadOrder.push(plain);
  }
  fs.writeFileSync(path.join(stage, 'lib/modules/load-order'), `${loadOrder.join('\n')}\n`);
  const archive = `${out}.cpio`;
  await spawnToFile('cpio', ['-o', '-H', 'newc', '-R', '0:0', '--quiet'], archive, { cwd: stage, stdin: `${listTree(stage).join('\n')}\n` });
  const { stdout } = await run('cpio', ['-t', '-F', archive], { timeoutMs: 30_000 });
  if (!stdout.split('\n').includes('init')) throw new FailedPreconditionError(`built ${archive} has no /init`, 'initrd');
  // SeaBIOS reads the disk slowly under TCG (about 1.3 MB/s here): a smaller file boots sooner.
  await spawnToFile('gzip', ['-6', '-n', '-c', archive], out);
  fs.rmSync(archive);
}

/** Relative paths of every entry under `root`, parents before children (cpio's expected order). */
/** Runs `file args...` with its stdout written to `out` (binary-safe), or removes `out` and rejects. */
function spawnToFile(file: string, args: string[], out: string, o: { cwd?: string; stdin?: string } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const fd = fs.openSync(out, 'w');
    const child = spawn(file, args, { cwd: o.cwd, stdio: [o.stdin === undefined ? 'ignore' : 'pipe', fd, 'pipe'], timeout: 60_000 });
    fs.closeSync(fd);
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => { stderr += c.toString(); });
    child.on('error', (err) => { fs.rmSync(out, { force: true }); reject(new FailedPreconditionError(`cannot run ${file}: ${err.message}`, 'bootdisk')); });
    child.on('close', (code, signal) => {
      if (code === 0) return resolve();
      fs.rmSync(out, { force: true });
      reject(new FailedPreconditionError(`${file} ${args.join(' ')} failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`, 'bootdisk'));
    });
    if (o.stdin !== undefined) child.stdin?.end(o.stdin);
  });
}

/** Absolute path of an installed program, or an error naming the Debian package to install. */
function which(program: string, pkg: string): string {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (!dir) continue;
    const candidate = path.join(dir, program);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch { /* next */ }
  }
  throw new FailedPreconditionError(`${program} is not installed; install the Debian package ${pkg} (hack/install-deps.sh --test)`, 'bootdisk');
}
