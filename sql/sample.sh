#!/bin/sh
# Create (or complete) a matter-management database with sample data and the matterlink contract:
# runs sql/<dialect>/schema.sql, contract.sql and sample.sql in that order.
#
#   sql/sample.sh --dialect sqlite --db PATH [--clients N] [--invoices N]
#   sql/sample.sh --dialect postgresql|mariadb --database NAME [--host H] [--port P] [--user U]
#                 [--clients N] [--invoices N]
#
# Defaults: 300 clients, 3000 invoices. The database file is created if it does not exist; sample data
# goes only into an empty database (sample.sql says so and changes nothing otherwise), while the schema
# and contract scripts are safe to run again. PostgreSQL and MariaDB databases must exist already
# (the psql or mariadb client connects to them without a password: trust or socket auth).

set -eu

usage() {
    cat <<'EOF'
usage: sql/sample.sh --dialect sqlite --db PATH [--clients N] [--invoices N]
       sql/sample.sh --dialect postgresql|mariadb --database NAME [--host H] [--port P]
                     [--user U] [--clients N] [--invoices N]

  --dialect D    database dialect: sqlite, postgresql or mariadb
  --db PATH      SQLite database file, created if it does not exist
  --database N   PostgreSQL or MariaDB database name (it must exist)
  --host H       server host (default 127.0.0.1)
  --port P       server port (default 5432 or 3306)
  --user U       user (default postgres or root)
  --clients N    number of clients, 1..1000000 (default 300)
  --invoices N   number of invoices, 0..9999999 (default 3000)
  -h, --help     show this help
EOF
}

die() {
    printf 'sample.sh: %s\n' "$1" >&2
    printf "Try 'sql/sample.sh --help'.\n" >&2
    exit 2
}

# A plain decimal number without leading zeros (leading zeros would be octal in some shells' arithmetic,
# and the value goes into an SQL command line).
is_count() {
    case $1 in
        '' | *[!0-9]* | 0?*) return 1 ;;
    esac
    [ ${#1} -le 7 ]
}

dialect=
db=
database=
host=127.0.0.1
port=
user=
clients=300
invoices=3000

while [ $# -gt 0 ]; do
    case $1 in
        --dialect | --db | --clients | --invoices | --database | --host | --port | --user)
            [ $# -ge 2 ] || die "option $1 needs a value"
            case $1 in
                --dialect) dialect=$2 ;;
                --db) db=$2 ;;
                --database) database=$2 ;;
                --host) host=$2 ;;
                --port) port=$2 ;;
                --user) user=$2 ;;
                --clients) clients=$2 ;;
                --invoices) invoices=$2 ;;
            esac
            shift 2
            ;;
        --dialect=*) dialect=${1#*=}; shift ;;
        --db=*) db=${1#*=}; shift ;;
        --clients=*) clients=${1#*=}; shift ;;
        --invoices=*) invoices=${1#*=}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done

[ -n "$dialect" ] || die "--dialect is required"
if ! is_count "$clients" || [ "$clients" -lt 1 ] || [ "$clients" -gt 1000000 ]; then
    die "--clients must be a whole number from 1 to 1000000"
fi
is_count "$invoices" || die "--invoices must be a whole number from 0 to 9999999"

case $dialect in
    sqlite) [ -n "$db" ] || die "--db is required for sqlite" ;;
    postgresql | mariadb)
        [ -n "$database" ] || die "--database is required for $dialect"
        case $database in *[!A-Za-z0-9_]*) die "--database must be letters, digits and _" ;; esac
        case $port in *[!0-9]*) die "--port must be a number" ;; esac
        ;;
    sqlserver) die "the SQL Server scripts are run with sqlcmd: see sql/sqlserver/README.md" ;;
    *) die "unknown dialect: $dialect (sqlite, postgresql or mariadb)" ;;
esac

here=$(cd "$(dirname "$0")" && pwd) || exit 1
dir=$here/$dialect
for f in schema.sql contract.sql sample.sql; do
    [ -r "$dir/$f" ] || { printf 'sample.sh: missing %s\n' "$dir/$f" >&2; exit 1; }
done

case $dialect in
    postgresql)
        psql -h "$host" -p "${port:-5432}" -U "${user:-postgres}" -d "$database" -v ON_ERROR_STOP=1 -q \
            -v clients="$clients" -v invoices="$invoices" \
            -f "$dir/schema.sql" -f "$dir/contract.sql" -f "$dir/sample.sql"
        exit
        ;;
    mariadb)
        set -- -h "$host" -P "${port:-3306}" -u "${user:-root}"
        mariadb "$@" "$database" <"$dir/schema.sql"
        mariadb "$@" "$database" <"$dir/contract.sql"
        # Without --abort-source-on-error the client exits 0 even when the script fails.
        mariadb "$@" --abort-source-on-error \
            -e "SET @clients = $clients, @invoices = $invoices; SOURCE $dir/sample.sql;" "$database"
        exit
        ;;
esac

command -v sqlite3 >/dev/null 2>&1 || { printf 'sample.sh: sqlite3 not found (apt-get install sqlite3)\n' >&2; exit 1; }
parent=$(dirname "$db")
[ -d "$parent" ] || { printf 'sample.sh: directory %s does not exist\n' "$parent" >&2; exit 1; }

# The scripts go through stdin, so paths need no quoting inside sqlite3 dot-commands; -bail stops at the
# first error, and each script is one transaction, so a failure leaves that script's work undone.
sqlite3 -bail "$db" <"$dir/schema.sql"
sqlite3 -bail "$db" <"$dir/contract.sql"
{
    printf '.parameter init\n.parameter set @clients %s\n.parameter set @invoices %s\n' "$clients" "$invoices"
    cat "$dir/sample.sql"
} | sqlite3 -bail "$db"
