#!/usr/bin/env bash
# System programs the test suite needs beside the Python packages, installed with apt-get
# when missing and we are root (as on CI); otherwise the missing packages are named and make
# stops. Each line: a test that finds the program, and the Debian package that brings it.
set -euo pipefail
missing=()
have() { eval "$1" > /dev/null 2>&1; }
check() { have "$1" || missing+=("$2"); }

# PostgreSQL server binaries: the Supabase schema, sink and outage tests start a real server.
check 'compgen -G "/usr/lib/postgresql/*/bin/initdb" || test -x "${PG_BINDIR:-/nonexistent}/initdb"' postgresql
# systemd's own checkers: the unit-file tests run systemd-analyze verify and systemd-sysusers.
check 'command -v systemd-analyze && command -v systemd-sysusers' systemd
# A real browser for the `epochwatch serve` tests (selenium is given both paths: nothing is
# downloaded at run time).
check 'test -x /usr/bin/chromium' chromium
check 'test -x /usr/bin/chromedriver' chromium-driver

[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get > /dev/null; then
    echo "system-deps: missing Debian packages: ${missing[*]} (install them: apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
