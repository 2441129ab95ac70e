#!/usr/bin/env bash
# Stops the emulators started by localstack/start-emulators.sh (used by `make down`).
set -euo pipefail
run="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.run"
for n in dynalite elasticmq localstack; do
  f="$run/$n.pid"
  [[ -f "$f" ]] || continue
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    # started with setsid: the pid leads its own process group
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    printf 'stop-emulators: stopped %s (pid %s)\n' "$n" "$pid" >&2
  fi
  rm -f "$f"
done
