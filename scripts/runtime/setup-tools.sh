#!/usr/bin/env bash
# Installs and starts what the runtime checks (test/nginx, test/image) need, idempotently:
# nginx, openssl, gettext-base (envsubst), docker.io (+ a running dockerd), buildah, debootstrap.
# Run as root on Debian bookworm (CI, the dev machines). Safe to run again: it installs only what is
# missing and starts dockerd only when no daemon answers.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have nginx || need+=(nginx)
have openssl || need+=(openssl)
have envsubst || need+=(gettext-base)
have dockerd || need+=(docker.io)
have buildah || need+=(buildah)
have debootstrap || need+=(debootstrap)
# debootstrap verifies the Release file with Debian's archive keyring.
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)

if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup-tools: missing ${need[*]}; run as root: apt-get update && apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "setup-tools: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Debian's nginx package enables and starts a default server on port 80 where an init system runs;
# the tests run their own nginx with their own prefix and config, so a stray default one is harmless.

# A Docker engine: start dockerd in the background unless one already answers.
docker_cli=/usr/bin/docker
[ -x "$docker_cli" ] || docker_cli=$(command -v docker)
if ! "$docker_cli" info >/dev/null 2>&1; then
  echo "setup-tools: starting dockerd"
  mkdir -p /var/log
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    "$docker_cli" info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! "$docker_cli" info >/dev/null 2>&1; then
    echo "setup-tools: dockerd did not come up; last lines of /var/log/dockerd.log:" >&2
    tail -n 30 /var/log/dockerd.log >&2 || true
    exit 1
  fi
fi
echo "setup-tools: nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), $("$docker_cli" version --format 'docker {{.Server.Version}}'), $(buildah --version), debootstrap $(dpkg-query -W -f='${Version}' debootstrap)"
