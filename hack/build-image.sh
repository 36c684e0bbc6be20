#!/bin/sh
# Builds the image the chart runs (charts/n0stack values.yaml image.repository:tag, by default
# localhost/n0stack:<package.json version>) with buildah, from scratch: no registry pull. The root
# filesystem is made here from what the machine's packages installed:
#   - the node binary of the installed `nodejs` package and every shared library it and the native
#     modules (lmdb's prebuilt .node files) load, found with ldd, plus the dynamic loader;
#   - /etc/passwd and /etc/group with an unprivileged n0stack user (uid 65532), /etc/ssl/certs from
#     ca-certificates (the kubernetes and etcd clients verify TLS), /tmp;
#   - the app in /app: dist/ (npm run build), proto/, crds/, package.json and the production
#     node_modules (a copy of ./node_modules pruned with `npm prune --omit=dev`, offline).
# The entrypoint is `node /app/dist/cli/n0stack.js`, so `podman run IMAGE controllers --help` and
# the chart's `args: [controllers, ...]` work.
#
#   hack/build-image.sh [TAG]         build and commit the image (needs buildah; run as root)
#   hack/build-image.sh --rootfs DIR  only make the root filesystem in DIR (no buildah needed)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERSION=$(node -p "require('$ROOT/package.json').version")
TAG=localhost/n0stack:$VERSION
ROOTFS=
case "${1:-}" in
  --rootfs) ROOTFS=${2:?--rootfs needs a directory} ;;
  '') ;;
  *) TAG=$1 ;;
esac

say() { echo "==> $*" >&2; }

[ -f "$ROOT/dist/cli/n0stack.js" ] || { say "dist/cli/n0stack.js is missing: run npm run build first"; exit 1; }
NODE=$(command -v node)
dpkg -S "$(readlink -f "$NODE")" >/dev/null 2>&1 || say "warning: $NODE does not come from a Debian package"

OWN_ROOTFS=
if [ -z "$ROOTFS" ]; then
  ROOTFS=$(mktemp -d /tmp/n0stack-rootfs.XXXXXX)
  OWN_ROOTFS=1
fi
mkdir -p "$ROOTFS"
R=$(cd "$ROOTFS" && pwd)
say "root filesystem in $R"
rm -rf "$R/app" "$R/usr" "$R/lib" "$R/lib64" "$R/etc" "$R/tmp" "$R/bin"
mkdir -p "$R/app" "$R/usr/bin" "$R/etc/ssl" "$R/tmp" "$R/bin"
chmod 1777 "$R/tmp"

# The app, with production dependencies only.
cp -a "$ROOT/dist" "$ROOT/proto" "$ROOT/crds" "$ROOT/package.json" "$ROOT/package-lock.json" "$R/app/"
cp -a "$ROOT/node_modules" "$R/app/node_modules"
(cd "$R/app" && npm prune --omit=dev --offline --no-audit --no-fund >/dev/null 2>&1) || say "warning: npm prune failed; keeping every dependency"
rm -rf "$R/app/dist/bench" "$R/app/dist/e2e"
find "$R/app/dist" -name '*.test.js' -delete

# node and what it loads, with the loader, at the paths ldd names.
cp -L "$NODE" "$R/usr/bin/node"
ln -sf ../usr/bin/node "$R/bin/node"
libs() { ldd "$1" 2>/dev/null | awk '/=>/ { print $3 } /^\t\/[^ ]+ \(/ { print $1 }' | grep '^/' || true; }
{
  libs "$NODE"
  find "$R/app/node_modules" -name '*.node' | while read -r mod; do libs "$mod"; done
} | sort -u | while read -r lib; do
  mkdir -p "$R$(dirname "$lib")"
  cp -L "$lib" "$R$lib"
done
# getaddrinfo loads the NSS modules by name at run time: files and dns are enough here.
for nss in /lib/x86_64-linux-gnu/libnss_files.so.2 /lib/x86_64-linux-gnu/libnss_dns.so.2 /lib/x86_64-linux-gnu/libresolv.so.2; do
  [ -e "$nss" ] && { mkdir -p "$R$(dirname "$nss")"; cp -L "$nss" "$R$nss"; }
done

printf 'root:x:0:0:root:/:/usr/sbin/nologin\nn0stack:x:65532:65532:n0stack:/tmp:/usr/sbin/nologin\n' >"$R/etc/passwd"
printf 'root:x:0:\nn0stack:x:65532:\n' >"$R/etc/group"
printf 'hosts: files dns\n' >"$R/etc/nsswitch.conf"
[ -d /etc/ssl/certs ] && cp -aL /etc/ssl/certs "$R/etc/ssl/certs"

# The root filesystem runs on its own: the entrypoint answers in a chroot.
if [ "$(id -u)" = 0 ]; then
  chroot "$R" /usr/bin/node /app/dist/cli/n0stack.js --version >/dev/null || { say "the root filesystem does not run node /app/dist/cli/n0stack.js"; exit 1; }
fi

if [ -z "$OWN_ROOTFS" ]; then
  say "root filesystem ready ($(du -sh "$R" | cut -f1)); entrypoint: /usr/bin/node /app/dist/cli/n0stack.js"
  exit 0
fi

command -v buildah >/dev/null || { say "buildah is missing: apt-get install buildah (or use --rootfs DIR)"; exit 1; }
CTR=$(buildah from scratch)
trap 'buildah rm "$CTR" >/dev/null 2>&1 || true; rm -rf "$R"' EXIT
buildah copy "$CTR" "$R" / >/dev/null
buildah config \
  --entrypoint '["/usr/bin/node", "/app/dist/cli/n0stack.js"]' --cmd '["--help"]' \
  --workingdir /app --user 65532:65532 --env NODE_ENV=production \
  --label org.opencontainers.image.title=n0stack --label "org.opencontainers.image.version=$VERSION" \
  --label org.opencontainers.image.source=https://github.com/n0stack/n0stack "$CTR"
buildah commit --quiet "$CTR" "$TAG" >/dev/null
say "built $TAG ($(du -sh "$R" | cut -f1) root filesystem)"
