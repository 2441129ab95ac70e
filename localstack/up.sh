#!/usr/bin/env bash
# `make up` without Docker: starts the local AWS emulators, builds and runs one
# ingest and $WORKERS worker processes against them in the foreground, with
# readable logs. Ctrl-C stops every process this script started.
#
# WAHOOK_SQS=localstack runs LocalStack's SQS (on the host, port 4566) instead
# of ElasticMQ (port 9324): the SQS that, like AWS, keeps abandoned long polls.
#
# The ingest runs in development mode (WAHOOK_INSECURE_SKIP_SIGNATURE=true) so the
# seed guide's unsigned curl examples work as written. To run it signed:
#   WAHOOK_APP_SECRET=... WAHOOK_INSECURE_SKIP_SIGNATURE=false make up
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
workers="${WORKERS:-1}"
http_port="${WAHOOK_UP_HTTP_PORT:-8080}"
health_port="${WAHOOK_UP_HEALTH_PORT:-8081}"
ddb="http://${WAHOOK_DYNAMODB_HOST:-127.0.0.1}:${WAHOOK_DYNAMODB_PORT:-4567}"
default_sqs_port=9324
[[ "${WAHOOK_SQS:-elasticmq}" == localstack ]] && default_sqs_port=4566
sqs="http://${WAHOOK_SQS_HOST:-127.0.0.1}:${WAHOOK_SQS_PORT:-$default_sqs_port}"

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "up: stopping ${#pids[@]} service process(es) and the emulators"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  "$here/stop-emulators.sh" || true
}
trap stop INT TERM EXIT

"$here/start-emulators.sh"

echo "up: building ingest, worker and wahook"
mkdir -p "$root/bin"
(cd "$root/ingest" && go build -o "$root/bin/ingest" ./cmd/ingest)
(cd "$root/worker" && go build -o "$root/bin/worker" ./cmd/worker && go build -o "$root/bin/wahook" ./cmd/wahook)

export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_ENDPOINT_URL_DYNAMODB="${AWS_ENDPOINT_URL_DYNAMODB:-$ddb}"
export AWS_ENDPOINT_URL_SQS="${AWS_ENDPOINT_URL_SQS:-$sqs}"
export AWS_EC2_METADATA_DISABLED=true
export WAHOOK_AUTO_PROVISION="${WAHOOK_AUTO_PROVISION:-true}"
export WAHOOK_LOG_FORMAT="${WAHOOK_LOG_FORMAT:-console}"
# Development mode (no signature check) unless an app secret is given in any
# of its forms; a verify token for the handshake unless one is given.
if [[ -z "${WAHOOK_APP_SECRET:-}${WAHOOK_APP_SECRETS:-}${WAHOOK_APP_SECRETS_FILE:-}" ]]; then
  export WAHOOK_INSECURE_SKIP_SIGNATURE="${WAHOOK_INSECURE_SKIP_SIGNATURE:-true}"
fi
if [[ -z "${WAHOOK_VERIFY_TOKEN:-}${WAHOOK_VERIFY_TOKENS:-}${WAHOOK_VERIFY_TOKENS_FILE:-}" ]]; then
  export WAHOOK_VERIFY_TOKEN=wahook-dev
fi

# Prefix each line with the process name so the interleaved logs stay readable.
prefixed() {
  local name=$1; shift
  "$@" > >(sed -u "s/^/[$name] /") 2>&1 &
  pids+=($!)
}

WAHOOK_HTTP_ADDR="127.0.0.1:$http_port" prefixed ingest "$root/bin/ingest"
# Let the ingest provision the tables and queues before the workers look for them.
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$http_port/health" 2>/dev/null && break
  sleep 0.2
done
for k in $(seq 1 "$workers"); do
  WAHOOK_HEALTH_ADDR="127.0.0.1:$((health_port + k - 1))" prefixed "worker-$k" "$root/bin/worker"
done

queue="${WAHOOK_QUEUE_NAME:-wahook-events}"
order="standard queue: no order between events"
[[ "$queue" == *.fifo ]] && order="FIFO queue: each conversation's events handled in the order ingest received them"
cat <<TXT

up: wahook is running
  queue:          $queue ($order)
  webhook:        http://127.0.0.1:$http_port/webhook
  ingest health:  curl -s http://127.0.0.1:$http_port/health/detailed | jq
  worker health:  curl -s http://127.0.0.1:$health_port/health/detailed | jq
  metrics:        curl -s http://127.0.0.1:$http_port/metrics | grep wahook_
  send one:       curl -X POST http://127.0.0.1:$http_port/webhook -H 'Content-Type: application/json' \\
                    -d '{"entry":[{"id":"page_id","changes":[{"value":{"messages":[{"id":"test_msg_001","from":"1234567890","text":{"body":"Test message"},"timestamp":"1642248600"}]}}]}]}'
  what is stored: make inspect ROWS=1   (wahook status: ledger states, queue and DLQ depths, rows)
  dead letters:   make wahook ARGS="dlq list"   (also: event KEY, dlq show/replay/purge; --help)
  Ctrl-C stops everything.

TXT

# Exit (and stop the rest) as soon as any service process dies.
wait -n "${pids[@]}" || true
echo "up: a service process exited"
