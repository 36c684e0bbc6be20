#!/usr/bin/env bash
# Assembles agent/drivers/probe-guest.S (the accelerator probe's boot sector) with binutils and
# prints it as base64, the form agent/drivers/accel-probe.ts embeds (PROBE_GUEST_BASE64).
# agent/drivers/accel-probe.test.ts checks that the embedded bytes are this script's output.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
as --64 -o "$out/probe.o" agent/drivers/probe-guest.S
ld -m elf_x86_64 -Ttext=0x7c00 --oformat=binary -o "$out/probe.bin" "$out/probe.o"
[[ $(stat -c %s "$out/probe.bin") == 512 ]] || { echo "probe guest is not one 512-byte sector" >&2; exit 1; }
base64 -w0 "$out/probe.bin"
echo
