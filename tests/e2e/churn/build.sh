#!/bin/sh
# build.sh [OUTPUT] -- build the churn tool (tests/e2e/churn/churn.c) with
# libpq and OpenSSL (Debian: libpq-dev libssl-dev pkg-config).  Default
# output: build/e2e/churn under the repository root.  Set CFLAGS to add
# flags (for example -fsanitize=address,undefined).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
out=${1:-$top/build/e2e/churn}
mkdir -p "$(dirname "$out")"
pkg-config --exists libpq openssl || {
	echo "build.sh: pkg-config cannot find libpq/openssl (apt-get install libpq-dev libssl-dev pkg-config)" >&2
	exit 1
}
# shellcheck disable=SC2046,SC2086
${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -g -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wvla \
	${CFLAGS:-} $(pkg-config --cflags libpq openssl) -o "$out.tmp" "$here/churn.c" \
	$(pkg-config --libs libpq openssl) -lpthread
mv -f "$out.tmp" "$out"
