#!/usr/bin/env bash
# Builds a small Debian bookworm cloud guest (qcow2) from Debian's packages only:
#   hack/build-guest-image.sh OUT.qcow2
# Runs as root. Reaches no network but the Debian mirror this machine's apt uses (or
# N0STACK_DEBIAN_MIRROR); N0STACK_DEB_CACHE (a directory) keeps the downloaded .debs for the next
# build. Needs debootstrap, fdisk (sfdisk), e2fsprogs, dosfstools, mtools,
# syslinux, syslinux-common, qemu-utils.
#
# Nothing is loop-mounted, so it also works where loop devices are refused:
#   disk: MBR (syslinux mbr.bin) | p1 FAT16, active: ldlinux.sys, syslinux.cfg, kernel, initrd
#                                | p2 ext4, filled by `mkfs.ext4 -d rootfs` (root=UUID=...)
# The guest: serial console on ttyS0, cloud-init with the NoCloud datasource only, rendering
# network-config through systemd-networkd, ssh host keys made at first boot, root locked, no
# passwords, no apt lists. Kernel modules no VM of ours needs (sound, GPU, Wi-Fi, physical NICs,
# ...) are left out, here and in later kernel upgrades (dpkg path-exclude).
set -euo pipefail
umask 022
export LC_ALL=C

log() { printf '==> [%4ds] %s\n' "$SECONDS" "$*" >&2; }
die() { printf 'build-guest-image: %s\n' "$*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 OUT.qcow2"
[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap, chroot, file ownership in the image)"
out=$1
[[ $out == *.qcow2 && $out != -* ]] || die "output ${out@Q} must be a path ending in .qcow2"
out_dir=$(cd "$(dirname -- "$out")" && pwd) || die "output directory of ${out@Q} does not exist"
out="$out_dir/$(basename -- "$out")"

for tool in debootstrap sfdisk mkfs.ext4 mkfs.fat mcopy syslinux qemu-img chroot; do
  command -v "$tool" >/dev/null || die "$tool is missing (./hack/install-deps.sh --test installs it)"
done
mbr_bin=/usr/lib/syslinux/mbr/mbr.bin
[[ -f $mbr_bin ]] || die "$mbr_bin is missing (package syslinux-common)"

# A repository of this machine's apt: the first deb822 `URIs:` or one-line `deb` entry whose path
# ends in /$1 and which serves suite $2.
find_repo() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    awk -v want="$2" '
      function has(list, s,   n, a, i) { n = split(list, a, " "); for (i = 1; i <= n; i++) if (a[i] == s) return 1; return 0 }
      /^[[:space:]]*#/ { next }
      /^[[:space:]]*$/ { if (uri != "" && has(suites, want)) print uri; uri = ""; suites = ""; next }
      /^URIs:/   { uri = $2 }
      /^Suites:/ { suites = ""; for (i = 2; i <= NF; i++) suites = suites " " $i }
      /^deb[[:space:]]/ { j = 2; if ($2 ~ /^\[/) { while ($j !~ /\]$/) j++; j++ } if ($(j + 1) == want) print $j }
      END { if (uri != "" && has(suites, want)) print uri }
    ' "$f"
  done | grep -E "/$1/?\$" | head -n1 || true
}
url_ok() { [[ $1 =~ ^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~/-]*)?$ ]]; }
mirror=${N0STACK_DEBIAN_MIRROR:-$(find_repo debian bookworm)}
[[ -n $mirror ]] || die "no Debian bookworm mirror found in /etc/apt/sources.list*; set N0STACK_DEBIAN_MIRROR"
url_ok "$mirror" || die "mirror ${mirror@Q} is not a plain http(s) URL"
# Only written into the guest's apt sources; the build never contacts it.
security=${N0STACK_DEBIAN_SECURITY_MIRROR:-$(find_repo debian-security bookworm-security)}
[[ -z $security ]] || url_ok "$security" || die "security mirror ${security@Q} is not a plain http(s) URL"

work=$(mktemp -d "${TMPDIR:-/var/tmp}/n0-guest.XXXXXXXX")
root="$work/rootfs"
tmp_out="$out_dir/.$(basename -- "$out").tmp.$$"
cleanup() {
  local rc=$? m
  # debootstrap's second stage mounts these in the chroot; a build cut short may leave them.
  # rm must never walk into the host's /proc or /sys.
  for m in "$root/sys" "$root/proc" "$root/dev/pts"; do
    if mountpoint -q "$m" 2>/dev/null; then umount "$m" 2>/dev/null || umount -l "$m" || true; fi
  done
  rm -rf --one-file-system -- "$work"
  rm -f -- "$tmp_out"
  [[ $rc -eq 0 ]] || log "failed (exit $rc); temp dir removed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "debootstrap bookworm (minbase), first stage: download and unpack from $mirror into $work"
# What a cloud guest needs on top of minbase. dbus: hostnamectl (cloud-init sets the hostname
# through it). cloud-guest-utils + fdisk: growpart, so a bigger disk grows the root partition.
# python3-cffi-backend: debootstrap does not resolve the virtual python3-cffi-backend-api-* that
# python3-cryptography (cloud-init -> oauthlib) depends on.
include=systemd-sysv,udev,dbus,linux-image-amd64,initramfs-tools,zstd,cloud-init,cloud-guest-utils,fdisk,openssh-server,sudo,iproute2,iputils-ping,netbase,ca-certificates,less,python3-cffi-backend
cache_args=()
if [[ -n ${N0STACK_DEB_CACHE:-} ]]; then
  [[ $N0STACK_DEB_CACHE == /* ]] || die "N0STACK_DEB_CACHE must be an absolute path"
  mkdir -p -- "$N0STACK_DEB_CACHE"
  cache_args=(--cache-dir="$N0STACK_DEB_CACHE")
fi
debootstrap --foreign "${cache_args[@]}" --variant=minbase --components=main --include="$include" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap (first stage) failed"; }

# Between the stages, so that the kernel's postinst builds the initramfs once, from the pruned
# module tree: dpkg leaves these paths out when the second stage installs the packages (and in
# every later upgrade inside the guest).
log "pruning kernel modules and documentation"
pruned_modules=(sound drivers/gpu drivers/media drivers/net/wireless drivers/net/ethernet drivers/infiniband
  drivers/staging drivers/iio drivers/comedi drivers/bluetooth drivers/isdn net/wireless net/mac80211 net/bluetooth)
mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
{
  echo "# n0stack guest: a QEMU VM with virtio devices needs none of these."
  for d in "${pruned_modules[@]}"; do echo "path-exclude=/lib/modules/*/kernel/$d/*"; done
  echo "path-exclude=/usr/share/doc/*"
  echo "path-include=/usr/share/doc/*/copyright"
  echo "path-exclude=/usr/share/man/*"
  echo "path-exclude=/usr/share/info/*"
  echo "path-exclude=/usr/share/locale/*"
  echo "path-include=/usr/share/locale/locale.alias"
} >"$root/etc/dpkg/dpkg.cfg.d/01-n0stack-guest"
for d in "${pruned_modules[@]}"; do rm -rf -- "$root"/lib/modules/*/kernel/"$d"; done
rm -rf -- "$root"/usr/share/man/* "$root"/usr/share/info/*

# The initramfs needs only what finds and mounts the root file system of a QEMU disk; MODULES=most
# would copy a thousand modules, a build of many minutes on a busy 2-core machine. The fsck hook
# reads the root's type from fstab, so fstab comes first.
root_uuid=$(cat /proc/sys/kernel/random/uuid)
printf 'UUID=%s\t/\text4\terrors=remount-ro\t0\t1\n' "$root_uuid" >"$root/etc/fstab"
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/usr/share/initramfs-tools/modules.d"
echo "MODULES=list" >"$root/etc/initramfs-tools/conf.d/n0stack.conf"
printf '%s\n' virtio_pci virtio_blk virtio_scsi sd_mod nvme ahci ata_piix ext4 crc32c_generic crc32c_intel \
  >"$root/usr/share/initramfs-tools/modules.d/n0stack"

in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C DEBIAN_FRONTEND=noninteractive "$@"; }

log "debootstrap second stage: configure (the initramfs build takes a while)"
in_root /debootstrap/debootstrap --second-stage >>"$work/debootstrap.log" 2>&1 \
  || { grep -E -i -B2 -A6 'error|fail' "$root/debootstrap/debootstrap.log" | tail -n 40 >&2; die "debootstrap (second stage) failed"; }
log "debootstrap done: $(du -sm --one-file-system "$root" | cut -f1) MiB"

kver=$(basename "$(ls -d "$root"/lib/modules/*/ | head -n1)")
[[ $kver =~ ^[0-9][A-Za-z0-9._+-]*$ ]] || die "unexpected kernel version ${kver@Q}"
# dpkg still makes the excluded trees' top directories; they must stay empty.
for d in "${pruned_modules[@]}"; do
  [[ -z $(find "$root/lib/modules/$kver/kernel/$d" -type f -print -quit 2>/dev/null) ]] || die "pruned modules came back: $d"
  rm -rf -- "$root/lib/modules/$kver/kernel/$d"
done
find "$root/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf -- {} +

log "configuring the guest"
echo "n0stack-guest" >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"

# cloud-init: the seed ISO only (no probing of cloud metadata URLs), networkd as the renderer
# (in systemd already; Debian's default would be ifupdown's ENI).
cat >"$root/etc/cloud/cloud.cfg.d/90-n0stack.cfg" <<'EOF'
# n0stack guest image: NoCloud seed ISO (label cidata) only.
datasource_list: [NoCloud, None]
system_info:
  network:
    renderers: [networkd]
    activators: [networkd]
# No locales package in this image; C.UTF-8 is built into libc.
locale: C.UTF-8
# The hostname from meta-data resolves (sudo asks for it).
manage_etc_hosts: true
# DSA is obsolete and sshd refuses it by default.
ssh_genkeytypes: [rsa, ecdsa, ed25519]
EOF
in_root systemctl enable systemd-networkd.service >/dev/null 2>&1
# A static address never comes "online" for wait-online on a bridge without carrier at times;
# nothing in this image orders itself after network-online.
in_root systemctl disable systemd-networkd-wait-online.service >/dev/null 2>&1 || true
# Background jobs that cost a TCG guest its first minutes (apt's daily fetch, e2scrub); a user
# who wants them back enables the timers.
in_root systemctl disable e2scrub_reap.service e2scrub_all.timer apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1 || true

rm -f "$root/etc/apt/sources.list"
{
  printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror"
  [[ -z $security ]] || printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$security"
} >"$root/etc/apt/sources.list.d/debian.sources"

# Host keys are made at first boot (cloud-init's ssh module); ssh-keygen -A covers a boot
# without cloud-init so sshd never starts without keys.
rm -f "$root"/etc/ssh/ssh_host_*
mkdir -p "$root/etc/systemd/system/ssh.service.d"
cat >"$root/etc/systemd/system/ssh.service.d/n0stack.conf" <<'EOF'
[Unit]
After=cloud-init.service
[Service]
ExecStartPre=/usr/bin/ssh-keygen -A
EOF
cat >"$root/etc/ssh/sshd_config.d/n0stack.conf" <<'EOF'
PasswordAuthentication no
PermitRootLogin no
EOF

in_root passwd -l root >/dev/null
# A fresh machine-id for every VM made from this image.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"

log "cleaning apt lists, caches and logs"
in_root apt-get clean
rm -rf -- "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/debconf/*-old \
  "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/var/tmp/* "$root/etc/resolv.conf"
: >"$root/etc/resolv.conf"
find "$root/var/log" -type f -exec truncate -s 0 {} +

log "building the boot partition (FAT16 + syslinux)"
vmlinuz="$root/boot/vmlinuz-$kver"
initrd="$root/boot/initrd.img-$kver"
[[ -f $vmlinuz && -f $initrd ]] || die "kernel or initrd missing under $root/boot"
boot_mib=$(( ($(stat -c %s "$vmlinuz") + $(stat -c %s "$initrd")) / 1048576 + 24 ))
boot_mib=$(( (boot_mib + 15) / 16 * 16 ))
cat >"$work/syslinux.cfg" <<EOF
SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND root=UUID=$root_uuid ro console=tty0 console=ttyS0,115200n8
EOF
mkfs.fat -F 16 -n N0BOOT -C "$work/boot.img" $((boot_mib * 1024)) >/dev/null
syslinux --install "$work/boot.img"
mcopy -i "$work/boot.img" "$work/syslinux.cfg" ::syslinux.cfg
mcopy -i "$work/boot.img" "$vmlinuz" ::vmlinuz
mcopy -i "$work/boot.img" "$initrd" ::initrd.img

log "building the root partition (mkfs.ext4 -d)"
used_mib=$(du -sm "$root" | cut -f1)
# Room for inode tables, the journal and a little growth; cloud-init's growpart takes the rest of
# a bigger disk.
root_mib=$(( used_mib * 5 / 4 + 192 ))
root_mib=$(( (root_mib + 63) / 64 * 64 ))
truncate -s "${root_mib}M" "$work/root.img"
mkfs.ext4 -q -F -L root -U "$root_uuid" -d "$root" "$work/root.img"
rm -rf --one-file-system -- "$root"

log "assembling the disk: 1 MiB + ${boot_mib} MiB boot + ${root_mib} MiB root"
disk_mib=$(( 1 + boot_mib + root_mib ))
truncate -s "${disk_mib}M" "$work/disk.img"
sfdisk --quiet "$work/disk.img" <<EOF
label: dos
start=1MiB, size=${boot_mib}MiB, type=e, bootable
start=$(( 1 + boot_mib ))MiB, size=${root_mib}MiB, type=83
EOF
dd if="$mbr_bin" of="$work/disk.img" bs=440 count=1 conv=notrunc status=none
dd if="$work/boot.img" of="$work/disk.img" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$work/root.img" of="$work/disk.img" bs=1M seek=$(( 1 + boot_mib )) conv=notrunc,sparse status=none
rm -f "$work/boot.img" "$work/root.img"

log "converting to compressed qcow2"
qemu-img convert -c -O qcow2 "$work/disk.img" "$tmp_out"
mv -f -- "$tmp_out" "$out"
log "done: $out ($(du -m "$out" | cut -f1) MiB actual, ${disk_mib} MiB virtual, kernel $kver)"
