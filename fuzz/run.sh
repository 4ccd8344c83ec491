#!/usr/bin/env bash
# Runs fuzz targets under AFL++ (cargo-afl, stable Rust) for SECONDS each, one after another, and
# fails if any crash is found (docs/fuzzing.md).
#
#   fuzz/run.sh [SECONDS] [TARGET...]     default: 25 seconds, every target
#
# FUZZ_OUT (default fuzz/out) holds AFL's output; each target's summary line is printed. Installs
# cargo-afl if missing and builds AFL++ once (~/.local/share/afl.rs).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-25}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(entry note bundle export)
fi
if ! cargo afl --version >/dev/null 2>&1; then
  cargo install --locked cargo-afl
fi
# Builds AFL++ for this toolchain; answers with an error when it is already built, which is fine.
cargo afl config --build >/dev/null 2>&1 || true
cargo afl build --release --locked --bins
out=${FUZZ_OUT:-out}
mkdir -p "$out"
status=0
for t in "${targets[@]}"; do
  rm -rf "${out:?}/$t"
  if ! AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
    cargo afl fuzz -V "$secs" -i "corpus/$t" -o "$out/$t" "target/release/$t" >"$out/$t.log" 2>&1; then
    echo "fuzz $t: afl-fuzz failed" >&2
    tail -n 30 "$out/$t.log" >&2
    exit 1
  fi
  stats="$out/$t/default/fuzzer_stats"
  get() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
  crashes=$(find "$out/$t/default/crashes" -type f -name 'id:*' | wc -l)
  hangs=$(find "$out/$t/default/hangs" -type f -name 'id:*' | wc -l)
  echo "fuzz $t: $(get run_time)s, $(get execs_done) execs ($(get execs_per_sec)/s), corpus $(get corpus_count), edges $(get edges_found)/$(get total_edges) ($(get bitmap_cvg)), crashes $crashes, hangs $hangs"
  if [ "$crashes" -gt 0 ]; then
    echo "fuzz $t: CRASH: reproduce with: cd fuzz && cargo afl build --release && target/release/replay $t $out/$t/default/crashes/id:*" >&2
    status=1
  fi
done
exit $status
