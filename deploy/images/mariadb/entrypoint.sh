#!/bin/bash
# First start on an empty data directory: the system tables (unpacked from the image, made at its build), the
# root password, the database and its user, all in bootstrap mode (no network), then run the server. A
# half-initialised directory (no sentinel) is wiped and initialised again, so a killed first start can simply
# be retried.
set -euo pipefail
DATADIR=/var/lib/mysql
SENTINEL="$DATADIR/.shophosting-initialized"
# Set once the loopback root accounts have a password (below): every directory this image initialises has it.
LOOPBACK_ROOT_SET="$DATADIR/.shophosting-loopback-root-password"
INITIAL=/usr/local/share/shophosting-mariadb-initial.tar
sql_escape() { printf "%s" "${1//\'/\'\'}"; }
# The official image's file_env: VAR or VAR_FILE (a file holding the value, e.g. a mounted secret), not both.
# The value stays in this script: it is never exported into the server's environment.
file_env() {
    local var="$1" file_var="${1}_FILE"
    if [[ -n "${!var:-}" && -n "${!file_var:-}" ]]; then
        echo "both $var and $file_var are set; give one" >&2
        exit 1
    fi
    if [[ -n "${!file_var:-}" ]]; then
        printf "%s" "$(< "${!file_var}")"
    else
        printf "%s" "${!var:-}"
    fi
}

# /run/mysqld may be a fresh tmpfs (a read-only root filesystem): the server's socket goes there.
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
if [[ ! -f "$SENTINEL" ]]; then
    root_password=$(file_env MARIADB_ROOT_PASSWORD)
    user_password=$(file_env MARIADB_PASSWORD)
    [[ -n "$root_password" ]] || { echo "MARIADB_ROOT_PASSWORD or MARIADB_ROOT_PASSWORD_FILE is required" >&2; exit 1; }
    find "$DATADIR" -mindepth 1 -delete
    chown mysql:mysql "$DATADIR"
    if [[ -f "$INITIAL" ]]; then
        # The image's system tables (Dockerfile), unpacked as mysql: its files, and no capability needed to
        # set their modes.
        setpriv --reuid=mysql --regid=mysql --init-groups tar --sparse -xf "$INITIAL" -C "$DATADIR"
    else
        mariadb-install-db --user=mysql --datadir="$DATADIR" --skip-test-db --auth-root-authentication-method=normal \
            --skip-name-resolve >/dev/null
    fi
    root_pw=$(sql_escape "$root_password")
    healthcheck_password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
    {
        echo "FLUSH PRIVILEGES;"
        # mariadb-install-db's root@<the host it ran on> (the image build's, for every store): never matched
        # (skip-name-resolve), and nobody's.
        echo "DELETE FROM mysql.global_priv WHERE User = 'root' AND Host NOT IN ('localhost', '127.0.0.1', '::1', '%');"
        echo "FLUSH PRIVILEGES;"
        echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$root_pw';"
        # mariadb-install-db leaves these two with no password at all.
        echo "ALTER USER IF EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '$root_pw';"
        echo "ALTER USER IF EXISTS 'root'@'::1' IDENTIFIED BY '$root_pw';"
        echo "CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '$root_pw';"
        echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
        if [[ -n "${MARIADB_DATABASE:-}" ]]; then
            echo "CREATE DATABASE IF NOT EXISTS \`${MARIADB_DATABASE//\`/}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
        fi
        # The official image's healthcheck account (its healthcheck.sh reads .my-healthcheck.cnf): a random
        # password of this data directory's, on the loopback hosts only, allowed nothing but to connect.
        for host in 127.0.0.1 ::1 localhost; do
            echo "CREATE USER IF NOT EXISTS 'healthcheck'@'$host' IDENTIFIED BY '$healthcheck_password';"
        done
        if [[ -n "${MARIADB_USER:-}" && -n "$user_password" ]]; then
            echo "CREATE USER IF NOT EXISTS '$(sql_escape "$MARIADB_USER")'@'%' IDENTIFIED BY '$(sql_escape "$user_password")';"
            [[ -n "${MARIADB_DATABASE:-}" ]] && echo "GRANT ALL ON \`${MARIADB_DATABASE//\`/}\`.* TO '$(sql_escape "$MARIADB_USER")'@'%';"
        fi
    } | mariadbd --user=mysql --datadir="$DATADIR" --bootstrap --skip-grant-tables=0 >/dev/null 2>&1
    (umask 0077; printf '[mariadb-client]\nport=3306\nsocket=/run/mysqld/mysqld.sock\nuser=healthcheck\npassword=%s\n' \
        "$healthcheck_password" > "$DATADIR/.my-healthcheck.cnf")
    chown mysql:mysql "$DATADIR/.my-healthcheck.cnf"
    touch "$LOOPBACK_ROOT_SET" "$SENTINEL"
elif [[ ! -f "$LOOPBACK_ROOT_SET" ]]; then
    # A data directory initialised before this image set them (2026-12): mariadb-install-db left root@127.0.0.1
    # and root@::1 without a password, so any process of this container could sign in as root over TCP. They
    # get root@localhost's password (the secret file's) once, in bootstrap mode, before the server starts.
    # It only hardens a working database: a failure is reported and the server starts all the same (the next
    # start tries again), never a database that stays down.
    root_password=$(file_env MARIADB_ROOT_PASSWORD)
    root_pw=$(sql_escape "$root_password")
    bootstrap_log=$(mktemp)
    if [[ -n "$root_password" ]] && {
        echo "FLUSH PRIVILEGES;"
        echo "ALTER USER IF EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '$root_pw';"
        echo "ALTER USER IF EXISTS 'root'@'::1' IDENTIFIED BY '$root_pw';"
    } | mariadbd --user=mysql --datadir="$DATADIR" --bootstrap --skip-grant-tables=0 >"$bootstrap_log" 2>&1; then
        touch "$LOOPBACK_ROOT_SET"
    else
        echo "could not give root@127.0.0.1 and root@::1 a password (tried again at the next start):" >&2
        tail -n 20 "$bootstrap_log" >&2
    fi
    rm -f "$bootstrap_log"
fi

if [[ "$1" == "mariadbd" ]]; then
    shift
    exec mariadbd --user=mysql --datadir="$DATADIR" --bind-address=0.0.0.0 --skip-name-resolve \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci "$@"
fi
exec "$@"
