#!/bin/bash
# Stand-in for the official postgres image's docker-entrypoint.sh, for the replay (test/replay): the part of
# its behaviour the pipeline relies on. On first start with an empty $PGDATA it runs initdb with
# POSTGRES_USER as superuser and POSTGRES_PASSWORD as its password, creates POSTGRES_DB (default: the user's
# name), accepts password (scram-sha-256) logins from any address (`host all all all scram-sha-256`, as the
# official image appends) and listens on all interfaces; then it runs the given command (`postgres -c …`) as
# the postgres user. Not copied: POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD, *_FILE variables and
# /docker-entrypoint-initdb.d scripts (the pipeline uses none of them). There is no psql in the embedded
# binaries, so the database is created in single-user mode before the server starts.
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then
  set -- postgres "$@"
fi

if [ "$1" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ "$1" = 'postgres' ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo 'Error: Database is uninitialized and superuser password is not specified (POSTGRES_PASSWORD).' >&2
    exit 1
  fi
  user=${POSTGRES_USER:-postgres}
  db=${POSTGRES_DB:-$user}
  initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") -D "$PGDATA"
  printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  if [ "$db" != 'postgres' ]; then
    printf 'CREATE DATABASE "%s";\n' "${db//\"/\"\"}" | postgres --single -D "$PGDATA" postgres >/dev/null
  fi
  echo 'PostgreSQL init process complete; ready for start up.'
fi

exec "$@"
