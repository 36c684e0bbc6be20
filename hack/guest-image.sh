#!/usr/bin/env bash
# Prints the path of the cached Debian guest image, building it first when the cache has none for
# the current build script:  hack/guest-image.sh  →  /var/cache/n0stack/guest-<hash>.qcow2
# The hash is of hack/build-guest-image.sh's content, so editing the recipe makes a new image and
# an unchanged one is reused across runs. The cache lives outside the git tree
# (N0STACK_CACHE, default /var/cache/n0stack). Progress goes to stderr, the path alone to stdout.
set -euo pipefail
here=$(cd "$(dirname -- "$0")" && pwd)
builder="$here/build-guest-image.sh"
cache=${N0STACK_CACHE:-/var/cache/n0stack}
[[ $cache == /* ]] || { echo "guest-image: N0STACK_CACHE must be an absolute path" >&2; exit 1; }
mkdir -p -- "$cache"

hash=$(sha256sum -- "$builder" | cut -c1-16)
image="$cache/guest-$hash.qcow2"

# One build at a time: a second caller waits for the first and then finds the image.
exec 9>"$cache/guest-$hash.lock"
flock 9
if [[ -s $image ]] && qemu-img check -q -- "$image" >/dev/null 2>&1; then
  echo "guest-image: cached $image" >&2
else
  echo "guest-image: building $image (several minutes)" >&2
  start=$SECONDS
  N0STACK_DEB_CACHE=${N0STACK_DEB_CACHE:-$cache/debs} "$builder" "$image" >&2
  echo "guest-image: built in $((SECONDS - start)) s" >&2
  # Images of older recipes are dead weight (~160 MiB each); a VM still running on one keeps its
  # open file.
  for old in "$cache"/guest-*.qcow2 "$cache"/guest-*.lock; do
    [[ $old == "$image" || $old == "$cache/guest-$hash.lock" || ! -f $old ]] || { echo "guest-image: removing outdated $old" >&2; rm -f -- "$old"; }
  done
fi
echo "$image"
