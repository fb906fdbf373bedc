#!/bin/sh
# Start or stop the PostgreSQL and MariaDB servers the tests run against, on 127.0.0.1 on
# free ports, with their data in DIR. As root (initdb refuses root, so the servers run as
# their service users).
#
#   tests/servers.sh start DIR    start both; writes DIR/servers.env (sourceable)
#   tests/servers.sh stop DIR     stop both (safe to run twice, or after a failed start)
#   tests/servers.sh createdb DIR DIALECT NAME
#                                 create an empty database NAME and print its ODBC
#                                 connection string
#   tests/servers.sh storedb DIR NAME
#                                 create an empty PostgreSQL database NAME for a core's store
#                                 and print its connection string (postgresql://...)
#   ML_PG_SETTINGS="-c name=value ..."   more PostgreSQL settings for start (the benchmarks
#                                 give it a cache the size of their database)
set -eu
command=${1:-}
dir=${2:-}
[ -n "$command" ] && [ -n "$dir" ] || {
    echo "usage: tests/servers.sh start|stop DIR | createdb DIR postgresql|mariadb NAME | storedb DIR NAME" >&2
    exit 2
}
PG_BIN=/usr/lib/postgresql/15/bin

# A free port below the ephemeral range (tests/free_port.py says why).
free_port() {
    python3 "$(dirname "$0")/free_port.py"
}

start() {
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    chmod 755 "$dir"
    rm -rf "$dir/pg" "$dir/my" "$dir/run"
    mkdir -p "$dir/pg" "$dir/my" "$dir/run"
    chown postgres "$dir/pg"
    chown mysql "$dir/my" "$dir/run"
    pg_port=$(free_port)
    my_port=$(free_port)
    runuser -u postgres -- "$PG_BIN/initdb" -D "$dir/pg/data" -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8 \
        >"$dir/pg/initdb.log" 2>&1 || { cat "$dir/pg/initdb.log"; exit 1; }
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w start \
        -o "-p $pg_port -k $dir/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 ${ML_PG_SETTINGS:-}" \
        >/dev/null || { cat "$dir/pg/server.log"; exit 1; }
    mariadb-install-db --no-defaults --datadir="$dir/my/data" --user=mysql \
        --auth-root-authentication-method=normal --skip-test-db >"$dir/my/install.log" 2>&1 ||
        { cat "$dir/my/install.log"; exit 1; }
    setsid mariadbd --no-defaults --datadir="$dir/my/data" --user=mysql --bind-address=127.0.0.1 \
        --port="$my_port" --socket="$dir/run/my.sock" --pid-file="$dir/run/my.pid" --skip-log-bin \
        --innodb-flush-log-at-trx-commit=2 --max-connections=200 ${ML_MARIADB_SETTINGS:-} \
        </dev/null >"$dir/my/server.log" 2>&1 &
    tries=0
    until mariadb -h127.0.0.1 -P"$my_port" -uroot -e 'SELECT 1' >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ $tries -lt 120 ] || { tail -n 30 "$dir/my/server.log"; exit 1; }
        sleep 0.5
    done
    cat >"$dir/servers.env" <<ENV
ML_SERVERS_DIR=$dir
ML_PG_PORT=$pg_port
ML_MARIADB_PORT=$my_port
ENV
    echo "PostgreSQL on 127.0.0.1:$pg_port, MariaDB on 127.0.0.1:$my_port (data in $dir)"
}

stop() {
    [ -d "$dir" ] || return 0
    if [ -f "$dir/pg/data/postmaster.pid" ]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [ -f "$dir/run/my.pid" ]; then
        pid=$(cat "$dir/run/my.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/servers.env"
}

createdb() {
    dialect=${3:?dialect}
    name=${4:?name}
    . "$dir/servers.env"
    case $dialect in
        postgresql)
            PGOPTIONS="--client-min-messages=warning" psql -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -q -v ON_ERROR_STOP=1 \
                -c "DROP DATABASE IF EXISTS \"$name\"" -c "CREATE DATABASE \"$name\"" >/dev/null
            echo "Driver=PostgreSQL Unicode;Server=127.0.0.1;Port=$ML_PG_PORT;Database=$name;Uid=postgres;UseDeclareFetch=1;Fetch=5000;pqopt={options='-ctimezone=UTC -cjit=off'}"
            ;;
        mariadb)
            mariadb -h127.0.0.1 -P"$ML_MARIADB_PORT" -uroot \
                -e "DROP DATABASE IF EXISTS \`$name\`; CREATE DATABASE \`$name\` CHARACTER SET utf8mb4"
            echo "Driver=MariaDB Unicode;Server=127.0.0.1;Port=$ML_MARIADB_PORT;Database=$name;User=root;Password=;OPTION=0"
            ;;
        *)
            echo "servers.sh: unknown dialect $dialect" >&2
            exit 2
            ;;
    esac
}

storedb() {
    name=${3:?name}
    . "$dir/servers.env"
    PGOPTIONS="--client-min-messages=warning" psql -h 127.0.0.1 -p "$ML_PG_PORT" -U postgres -q -v ON_ERROR_STOP=1 \
        -c "DROP DATABASE IF EXISTS \"$name\"" -c "CREATE DATABASE \"$name\"" >/dev/null
    echo "postgresql://postgres@127.0.0.1:$ML_PG_PORT/$name"
}

case $command in
    start) start ;;
    storedb) storedb "$@" ;;
    stop) stop ;;
    createdb) createdb "$@" ;;
    *)
        echo "servers.sh: unknown command $command" >&2
        exit 2
        ;;
esac
