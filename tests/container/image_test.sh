#!/usr/bin/env bash
# The container image (Dockerfile) built with podman and started: the node
# runs as a non-root user on a read-only root filesystem without
# capabilities, serves /healthz on 127.0.0.1, and twinctl inside the image
# reaches it. Without a reachable image registry the Debian 12 base image is
# made from the Debian archive with debootstrap. Skipped (exit 77), saying
# why, where podman is missing or cannot start containers.
#
# Usage: tests/container/image_test.sh
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAILED: $*" >&2; exit 1; }

command -v podman >/dev/null || skip "podman is not installed (Debian: apt-get install podman debootstrap)"
# Can this machine start a container at all? (The host's root as the container's.)
if ! probe=$(timeout 120 podman run --rm --network=host --rootfs / /bin/true 2>&1); then
  skip "podman cannot start containers here: $(echo "$probe" | tail -1 | cut -c1-200)"
fi

base=localhost/healthtwin-base:bookworm
if ! podman image exists "$base"; then
  if podman pull -q docker.io/library/debian:12-slim >/dev/null 2>&1; then
    podman tag docker.io/library/debian:12-slim "$base"
  else
    command -v debootstrap >/dev/null || skip "no image registry reachable and debootstrap is not installed"
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
    tar -C "$root" -c . | podman import - "$base" >/dev/null
  fi
fi

image=localhost/healthtwin:test
podman build -q -t "$image" --build-arg BASE="$base" "$src" >/dev/null || fail "the image does not build"

uid=$(podman run --rm --network=host --entrypoint /usr/bin/id "$image" -u)
[ "$uid" != 0 ] || fail "the image runs as root"

work=$(mktemp -d)
cid=""
cleanup() {
  [ -n "$cid" ] && podman rm -f "$cid" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
head -c 48 /dev/urandom | base64 > "$work/dev.secret"
chmod 0644 "$work/dev.secret"
grpc=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
http=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cid=$(podman run -d --network=host --read-only --cap-drop=ALL --security-opt no-new-privileges \
  --tmpfs /tmp --tmpfs /var/lib/healthtwin:uid=10001,gid=10001,mode=0700 \
  -v "$work/dev.secret:/etc/healthtwin/dev.secret:ro" "$image" \
  --insecure-plaintext --grpc-listen=127.0.0.1:$grpc --http-listen=127.0.0.1:$http \
  --data-dir=/var/lib/healthtwin/db --shards=16 --auth-hs256-secret-file=/etc/healthtwin/dev.secret)
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$http/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$http/healthz" | grep -q ok || fail "no /healthz from the container: $(podman logs "$cid" 2>&1 | tail -5)"
podman exec "$cid" sh -c 'twinctl token --hs256-secret-file /etc/healthtwin/dev.secret --subject sre-1 \
  --tenant t --role sre > /tmp/t.jwt && twinctl cluster status --target 127.0.0.1:'"$grpc"' --plaintext \
  --token-file /tmp/t.jwt' | grep -q "ready" || fail "twinctl in the image does not reach the node"
podman stop -t 30 "$cid" >/dev/null
code=$(podman inspect -f '{{.State.ExitCode}}' "$cid")
[ "$code" = 0 ] || fail "the node exited $code on SIGTERM"
echo "PASSED: the image builds, runs as uid $uid and serves"
