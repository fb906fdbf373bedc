#!/bin/sh
# Install what matterlink needs to build and run, with apt-get, only if missing; with
# --servers also the database servers and drivers the tests run against.
# Debian 12, as root. Idempotent: a second run installs nothing.
set -eu
packages="build-essential cmake pkg-config clang-format python3 sqlite3 \
libzmq3-dev libczmq-dev libjansson-dev libcurl4-openssl-dev libssl-dev uuid-dev \
unixodbc unixodbc-dev libsqliteodbc libsqlite3-dev libpq-dev python3-aiosmtpd libsodium-dev libmicrohttpd-dev"
if [ "${1:-}" = "--servers" ]; then
    packages="$packages postgresql odbc-postgresql mariadb-server mariadb-client odbc-mariadb \
chromium chromium-driver python3-selenium openssl"
fi
missing=""
for package in $packages; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $package"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing >/dev/null
fi
# The SQLite ODBC driver must be registered as "SQLite3" (Debian's package does this; a
# minimal image may have skipped the trigger).
if ! odbcinst -q -d -n SQLite3 >/dev/null 2>&1; then
    printf '[SQLite3]\nDescription=SQLite3 ODBC Driver\nDriver=libsqlite3odbc.so\nSetup=libsqlite3odbc.so\n' >/tmp/ml_sqlite3_driver.ini
    odbcinst -i -d -f /tmp/ml_sqlite3_driver.ini >/dev/null
fi
