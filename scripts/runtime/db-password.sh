#!/usr/bin/env bash
# Creates the database password file an environment's env file names (DB_PASSWORD_FILE), when it does not
# exist yet: 32 random alphanumeric characters in secrets/<env>_db_password (git-ignored).
#
#   npm run db-password -- staging
#   npm run db-password -- prod
#
# The folder is private to its owner (0700); the file itself is readable (0644) because compose bind-mounts
# it as a secret for the postgres (uid 999) and node (uid 1000) users inside the containers. PostgreSQL
# reads it only when it initialises an empty volume: to change the password later, ALTER ROLE first.
set -euo pipefail

env=${1:-}
case "$env" in
  staging | prod) ;;
  *)
    echo "usage: npm run db-password -- <staging|prod>   (dev uses the committed env/dev.db-password)" >&2
    exit 2
    ;;
esac
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
file="$root/secrets/${env}_db_password"
if [ -s "$file" ]; then
  echo "db-password: keeping $file"
  exit 0
fi
mkdir -p "$root/secrets"
chmod 700 "$root/secrets"
password=$(openssl rand -base64 48 | tr -dc 'A-Za-z0-9' | head -c 32)
[ "${#password}" -eq 32 ] || { echo "db-password: could not generate a password" >&2; exit 1; }
umask 022
printf '%s' "$password" >"$file.part"
chmod 644 "$file.part"
mv "$file.part" "$file"
echo "db-password: wrote $file"
