#!/usr/bin/env bash
# The public API of the published crates, one item a line (tests/src/bin/public_api.rs), against
# the committed snapshots in this folder. CI runs it as is: any difference fails, so every change
# to the public API is deliberate. After a deliberate change: `tests/api/check.sh --update`, and
# commit the new snapshots with it (the diff is the API change, for review).
set -euo pipefail
cd "$(dirname "$0")/../.."
update=false
[ "${1:-}" = "--update" ] && update=true
# Rustdoc's JSON output is unstable: RUSTC_BOOTSTRAP lets the stable toolchain write it. Its own
# target dir, so the main one is not rebuilt.
export RUSTC_BOOTSTRAP=1
target=target/public-api
status=0
for pkg in mcp-oauth-core mcp-oauth-client; do
  crate=${pkg//-/_}
  RUSTDOCFLAGS="-Z unstable-options --output-format json" \
    cargo doc -q -p "$pkg" --no-deps --all-features --target-dir "$target"
  cargo run -q -p mcp-oauth-tests --bin public_api -- "$target/doc/$crate.json" > "$target/$pkg.txt"
  if $update; then
    cp "$target/$pkg.txt" "tests/api/$pkg.txt"
  elif ! diff -u "tests/api/$pkg.txt" "$target/$pkg.txt"; then
    echo "the public API of $pkg changed (above: - committed, + now); if deliberate, run tests/api/check.sh --update and commit" >&2
    status=1
  fi
  echo "$pkg: $(cargo run -q -p mcp-oauth-tests --bin public_api -- "$target/doc/$crate.json" --counts | tr '\n' ' ')"
done
exit $status
