#!/usr/bin/env bash
# Generates a self-signed TLS certificate for nginx when none usable exists: an ECDSA P-256 key and a
# certificate whose subjectAltName covers localhost, 127.0.0.1, ::1 and a configurable host name.
#
#   npm run certs                       # host name: $CERT_HOSTNAME, else localhost
#   npm run certs -- loans.example.com
#
# Writes $CERT_DIR/tls.crt and $CERT_DIR/tls.key (default nginx/certs/, git-ignored; the key is mode 600).
# Idempotent: an existing pair is kept unless the certificate expires within a day, lacks the host name, or
# does not match its key. For production, put a CA-issued certificate and key in that folder instead.
set -euo pipefail

dir=${CERT_DIR:-"$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/certs"}
host=${1:-${CERT_HOSTNAME:-localhost}}
days=${CERT_DAYS:-365}
crt="$dir/tls.crt"
key="$dir/tls.key"

command -v openssl >/dev/null 2>&1 || { echo "generate-cert: openssl not found (apt-get install -y openssl)" >&2; exit 1; }
if ! [[ "$host" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
  echo "generate-cert: '$host' is not a valid host name" >&2
  exit 1
fi

usable() {
  [ -s "$crt" ] && [ -s "$key" ] || return 1
  openssl x509 -in "$crt" -noout -checkend 86400 >/dev/null 2>&1 || { echo "generate-cert: $crt expires within a day"; return 1; }
  openssl x509 -in "$crt" -noout -ext subjectAltName 2>/dev/null | tr ',' '\n' | sed 's/^ *//' \
    | grep -qFx -e "DNS:$host" -e "IP Address:$host" \
    || { echo "generate-cert: $crt does not cover $host"; return 1; }
  [ "$(openssl x509 -in "$crt" -noout -pubkey)" = "$(openssl pkey -in "$key" -pubout 2>/dev/null)" ] \
    || { echo "generate-cert: $crt does not match $key"; return 1; }
}

if usable; then
  echo "generate-cert: keeping $crt ($(openssl x509 -in "$crt" -noout -enddate))"
  exit 0
fi

mkdir -p "$dir"
chmod 700 "$dir"
san="DNS:localhost,IP:127.0.0.1,IP:::1"
if [ "$host" != localhost ]; then
  if [[ "$host" =~ ^[0-9.]+$ ]]; then san="$san,IP:$host"; else san="$san,DNS:$host"; fi
fi
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -nodes -days "$days" \
  -subj "/CN=$host" -addext "subjectAltName=$san" -addext "extendedKeyUsage=serverAuth" \
  -keyout "$key.part" -out "$crt.part" 2>/dev/null
chmod 600 "$key.part"
chmod 644 "$crt.part"
mv "$key.part" "$key"
mv "$crt.part" "$crt"
echo "generate-cert: wrote $crt and $key for $san, valid $days days (self-signed: clients need --cacert $crt)"
