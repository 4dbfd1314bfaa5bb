#!/usr/bin/env bash
# Builds the statically linked kharness that `kharness matrix` boots as each
# guest's /init: target/x86_64-unknown-linux-gnu/release/kharness.
# A normal build links glibc dynamically; crt-static links it in. With
# --target, proc-macros and build scripts are still built for the host.
# getrandom_backend="linux_getrandom": the getrandom crate finds glibc's
# getrandom() with dlsym, which fails in a static binary, and then keeps
# /dev/urandom open for good — an fd the unix cases would count as leaked.
# This makes it call the getrandom(2) syscall through libc directly.
#   ci/build-static.sh [extra cargo build arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
# CARGO_PROFILE_RELEASE_STRIP=debuginfo: the guest's initramfs carries the
# binary, and its debug info (7/8 of the file) only costs boot time there;
# symbols stay for backtraces. The objects are the same as with it, so
# only the link differs.
CARGO_PROFILE_RELEASE_STRIP=debuginfo \
CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS='-C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"' \
	cargo build --release --target x86_64-unknown-linux-gnu -p kharness-cli "$@"
bin=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/kharness
if readelf -l "$bin" 2>/dev/null | grep -q 'Requesting program interpreter'; then
	echo "ci/build-static.sh: $bin is not static" >&2
	exit 1
fi
echo "static kharness: $bin"
