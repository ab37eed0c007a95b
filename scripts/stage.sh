#!/usr/bin/env bash
# Run one stage of `make test`, time it, and append one line to the summary:
#     <stage>  ok|FAILED  <seconds>s  <the stage's own result line>
# The result line is the last line of the stage's output that looks like a verdict
# ("RESULT: ...", pytest's "== 3 passed in 1.2s ==", ansible-lint's "Passed: ..."/"Failed: ...").
# On failure the summary so far is printed and the stage's exit status is returned (fail fast).
#
# Usage: scripts/stage.sh NAME COMMAND [ARGS...]
# Environment: STAGE_SUMMARY (default tests/output/test-summary.txt);
#              KEEP_GOING=1 records a failure and carries on (`make test KEEP_GOING=1`).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name="$1"
shift
summary="${STAGE_SUMMARY:-$ROOT/tests/output/test-summary.txt}"
logdir="$ROOT/tests/output/stages"
mkdir -p "$logdir" "$(dirname "$summary")"
log="$logdir/$name.log"

printf '\n===== stage %s: %s =====\n' "$name" "$*"
start=$(date +%s%N)
"$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
end=$(date +%s%N)
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')

verdict_re='RESULT:|^=+ .*(passed|failed|error|errors|skipped|deselected|no tests ran).* =+$|^(Passed|Failed): [0-9]+ failure'
result="$(grep -E "$verdict_re" "$log" | tail -n 1 | sed -E 's/^\[[a-z-]+\] //; s/^=+ //; s/ =+$//')"
status=ok
(( rc == 0 )) || status=FAILED
line="$(printf '%-12s %-6s %7ss  %s' "$name" "$status" "$secs" "${result:-(exit $rc)}")"
printf '%s\n' "$line" >> "$summary"
printf '===== %s\n' "$line"

if (( rc != 0 )); then
    if [[ "${KEEP_GOING:-0}" == 1 ]]; then
        printf '===== %s failed; KEEP_GOING=1, continuing (log: %s)\n' "$name" "${log#"$ROOT"/}"
        exit 0
    fi
    printf '\n===== summary (stopped at %s; log: %s) =====\n' "$name" "${log#"$ROOT"/}"
    cat "$summary"
fi
exit "$rc"
