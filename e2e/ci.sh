#!/usr/bin/env bash
# The e2e race suite in its CI form on each backend named in the arguments
# (WAHOOK_E2E_BACKEND values), all at once: each route's scenarios spend most
# of their time waiting on leases, visibility timeouts and polls, so two routes
# share 2 cores with little loss. Every output line is prefixed with its route.
# Within a route, scenarios run E2E_PARALLEL at a time (default 3; see
# scenarios/doc.go for which run alone).
# Environment: GO (go), TESTFLAGS (extra go test flags), E2E_SKIP_<backend>
# (a -skip pattern for that route, with "-" in the name written "_"),
# E2E_PARALLEL.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
GO="${GO:-go}"
PARALLEL="${E2E_PARALLEL:-3}"
(($#)) || { echo "usage: $0 BACKEND..." >&2; exit 2; }

# Build the test binaries once, before the routes race to build them.
$GO test -race -count=1 -run '^$' ./... >/dev/null || exit 1

pids=() names=() starts=()
for b in "$@"; do
  skipvar="E2E_SKIP_${b//-/_}"
  skip="${!skipvar:-}"
  echo "== go test -race -short e2e on $b (the race suite in its CI form)${skip:+, skipping $skip}"
  (
    # shellcheck disable=SC2086 # TESTFLAGS is a list of flags
    WAHOOK_E2E_BACKEND="$b" $GO test -race -short -count=1 -timeout 15m -parallel "$PARALLEL" ${skip:+-skip "$skip"} ${TESTFLAGS:-} ./... 2>&1 |
      sed -u "s/^/[$b] /"
    exit "${PIPESTATUS[0]}"
  ) &
  pids+=($!) names+=("$b") starts+=("$(date +%s)")
done

failed=()
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || failed+=("${names[$i]}")
  echo "== e2e on ${names[$i]} finished after $(($(date +%s) - ${starts[$i]}))s"
done
if ((${#failed[@]})); then
  echo "== e2e FAILED on: ${failed[*]}"
  exit 1
fi
