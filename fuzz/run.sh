#!/usr/bin/env bash
# Fuzz every cerfs parser for a while: fuzz/run.sh [seconds per target, default 10].
#
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 lets the stable toolchain use them.
# New inputs go to fuzz/corpus/<target>/ (kept between runs, not committed); a crash is
# saved under fuzz/artifacts/<target>/ and makes the script fail after all targets ran.
# CERFS_FUZZ_SANITIZER picks the sanitizer (default: none, for a quick build; the long run
# in README.md uses address); CERFS_FUZZ_PROFILE=dev builds without optimisation: a
# quicker build, but each input runs 20-30 times slower (a smoke test only).
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-10}"
sanitizer="${CERFS_FUZZ_SANITIZER:-none}"
build=(-s "$sanitizer")
if [ "${CERFS_FUZZ_PROFILE:-release}" = dev ]; then
  build+=(--dev)
fi
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi

cargo fuzz build "${build[@]}"

# Extra seed corpora: the files in seeds/<target>/ and, for the binary formats, the
# repository's hostile test files (../testdata).
seeds_for() {
  local target="$1"
  [ -d "seeds/$target" ] && echo "seeds/$target"
  case "$target" in
    cab_index) echo ../testdata/cabs ;;
    minidump | stack_walk) echo ../testdata/minidumps ;;
  esac
  return 0
}

failed=()
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target"
  # shellcheck disable=SC2046
  if ! cargo fuzz run "${build[@]}" "$target" "corpus/$target" $(seeds_for "$target") -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
    failed+=("$target")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz: every target ran ${secs}s without a crash"
