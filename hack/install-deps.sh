#!/usr/bin/env bash
# Installs what n0stack needs on a Debian machine with Node.js 20 and root: the Debian packages
# of the real tools, then the npm dependencies (npm ci) and the build. Idempotent and quiet when
# everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(qemu-system-x86 qemu-utils genisoimage iproute2 etcd-server)
# The test tiers also boot a tiny guest: Debian's kernel plus a busybox initramfs built by the tests.
# python3-yaml: the cloud-init tests parse seed files with PyYAML, the parser cloud-init uses.
# dosfstools, mtools, syslinux: the BIOS-bootable test disk (agent/drivers/testing/bootdisk.ts).
# curl: the download baseline of bench/disk.ts.
# buildah, podman, runc: cli/image.int.test.ts builds the chart's image (hack/build-image.sh) and runs it.
# binutils: a unit test reassembles the accelerator probe's boot sector (hack/build-probe-guest.sh).
# debootstrap, fdisk (sfdisk), e2fsprogs: the Debian guest image of the e2e tests
# (hack/build-guest-image.sh, with dosfstools/mtools/syslinux); openssh-client logs into it.
# openssh-server: cli/deploy/deploy.int.test.ts runs its own sshd binary on a loopback port; the
# test never uses the package's service (here policy-rc.d keeps it from starting; on a machine whose
# init starts services it runs as Debian sets it up, and is left alone: it may be how you log in).
# chromium: the web UI test drives Debian's Chromium with playwright-core (e2e/web-ui.test.ts).
if [[ "${1:-}" == "--test" ]]; then packages+=(binutils linux-image-amd64 busybox-static cpio openssh-client python3-yaml dosfstools mtools syslinux syslinux-common curl debootstrap fdisk e2fsprogs openssh-server chromium buildah podman runc); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "==> installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# etcd-server's package starts a system etcd on 2379; n0stack never uses it (tests start their own).
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl stop etcd || true
fi

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "==> npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "==> build"
npm run --silent build
