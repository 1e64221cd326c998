#!/usr/bin/env bash
# Builds a local stand-in for the official `node:<version>-bookworm-slim` image, for machines that cannot
# pull images: a Debian bookworm root filesystem from debootstrap (minbase), the host's own Node.js binary
# and npm under /usr/local (the official layout), and a `node` user with uid/gid 1000.
#
# Usage: scripts/runtime/build-base-image.sh [TAG]      (default: localhost/node-standin:bookworm-slim)
# Prints the tag on its last line. Idempotent: the image is rebuilt only when its inputs changed (host Node
# version, this script); the debootstrap root filesystem is cached under $BASE_CACHE_DIR
# (default /var/cache/loan-runtime) between runs. Needs root, debootstrap and buildah
# (scripts/runtime/setup-tools.sh installs them); also hands the image to Docker when a daemon answers.
set -euo pipefail

tag=${1:-${BASE_IMAGE:-localhost/node-standin:bookworm-slim}}
cache_dir=${BASE_CACHE_DIR:-/var/cache/loan-runtime}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm

for tool in debootstrap buildah node tar; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "build-base-image: '$tool' not found; run: sudo bash scripts/runtime/setup-tools.sh" >&2
    exit 1
  }
done

node_bin=$(readlink -f "$(command -v node)")
node_version=$(node -p 'process.versions.node')
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
[ -f "$npm_dir/package.json" ] || { echo "build-base-image: npm not found next to node" >&2; exit 1; }
npm_version=$(node -p "require('$npm_dir/package.json').version")
key="node-$node_version-npm-$npm_version-$(sha256sum "$0" | cut -c1-12)"

existing=$(buildah inspect --type image --format '{{index .Docker.Config.Labels "org.loan-service.standin-key"}}' "$tag" 2>/dev/null || true)
if [ "$existing" != "$key" ]; then
  mkdir -p "$cache_dir"
  rootfs_tar="$cache_dir/debootstrap-$suite-minbase.tar"
  if [ ! -s "$rootfs_tar" ]; then
    echo "build-base-image: debootstrap $suite (minbase) from $mirror"
    tmp=$(mktemp -d)
    debootstrap --variant=minbase "$suite" "$tmp/rootfs" "$mirror" >"$cache_dir/debootstrap.log" 2>&1 || {
      tail -n 20 "$cache_dir/debootstrap.log" >&2
      exit 1
    }
    rm -rf "$tmp/rootfs/var/cache/apt/archives/"*.deb "$tmp/rootfs/var/lib/apt/lists/"* "$tmp/rootfs/tmp/"*
    tar --numeric-owner -C "$tmp/rootfs" -cf "$rootfs_tar.part" .
    mv "$rootfs_tar.part" "$rootfs_tar"
    rm -rf "$tmp"
  fi

  echo "build-base-image: assembling $tag (Node $node_version, npm $npm_version)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/rootfs"
  tar --numeric-owner -C "$work/rootfs" -xf "$rootfs_tar"
  # The official image's layout: node and npm under /usr/local, npm/npx as symlinks.
  install -D -m 0755 "$node_bin" "$work/rootfs/usr/local/bin/node"
  mkdir -p "$work/rootfs/usr/local/lib/node_modules"
  cp -a "$npm_dir" "$work/rootfs/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$work/rootfs/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$work/rootfs/usr/local/bin/npx"
  chroot "$work/rootfs" groupadd --gid 1000 node
  chroot "$work/rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin chroot "$work/rootfs" /usr/local/bin/node -e 'process.exit(0)'

  ctr=$(buildah from --pull=never scratch)
  buildah add --quiet "$ctr" "$work/rootfs" / >/dev/null
  buildah config \
    --env "NODE_VERSION=$node_version" \
    --env "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --cmd node \
    --label "org.loan-service.standin-key=$key" \
    --label "org.opencontainers.image.description=Local stand-in for node:bookworm-slim (debootstrap + host Node $node_version)" \
    "$ctr"
  buildah commit --quiet --format docker --rm "$ctr" "$tag" >/dev/null
fi

# Docker gets the same image, so that image sizes can be compared against it.
if docker info >/dev/null 2>&1; then
  in_docker=$(docker image inspect --format '{{index .Config.Labels "org.loan-service.standin-key"}}' "$tag" 2>/dev/null || true)
  if [ "$in_docker" != "$key" ]; then
    buildah push --quiet "$tag" "docker-daemon:$tag" >/dev/null
  fi
fi
echo "$tag"
