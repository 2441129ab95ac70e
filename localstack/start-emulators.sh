#!/usr/bin/env bash
# Starts the local AWS emulators in the background (used by `make up`):
#   dynalite  (DynamoDB, in memory) on $WAHOOK_DYNAMODB_HOST:$WAHOOK_DYNAMODB_PORT (127.0.0.1:4567)
#   the SQS emulator WAHOOK_SQS names, on $WAHOOK_SQS_HOST:$WAHOOK_SQS_PORT:
#     elasticmq (default): ElasticMQ, in memory           (127.0.0.1:9324)
#     localstack:          LocalStack's SQS on the host   (127.0.0.1:4566; state in localstack/.run/localstack)
# Waits until both answer an API call (ListTables, ListQueues), then returns.
# Logs: $WAHOOK_EMULATOR_LOG_DIR (default localstack/.run/logs); pid files in localstack/.run/.
# Idempotent: an emulator already running from a previous start is left alone.
# Stop them with localstack/stop-emulators.sh. Runs install.sh first (fast when installed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="${WAHOOK_TOOLS_DIR:-$here/.tools}"
run="$here/.run"
logs="${WAHOOK_EMULATOR_LOG_DIR:-$run/logs}"
ddb_host="${WAHOOK_DYNAMODB_HOST:-127.0.0.1}"
ddb_port="${WAHOOK_DYNAMODB_PORT:-4567}"
sqs="${WAHOOK_SQS:-elasticmq}"
case "$sqs" in
elasticmq) default_sqs_port=9324 ;;
localstack) default_sqs_port=4566 ;;
*) printf 'start-emulators: WAHOOK_SQS=%s: want elasticmq or localstack\n' "$sqs" >&2; exit 2 ;;
esac
sqs_host="${WAHOOK_SQS_HOST:-127.0.0.1}"
sqs_port="${WAHOOK_SQS_PORT:-$default_sqs_port}"
timeout_s="${WAHOOK_EMULATOR_START_TIMEOUT_S:-90}"

log() { printf 'start-emulators: %s\n' "$*" >&2; }

"$here/install.sh" dynalite "$sqs"
mkdir -p "$run" "$logs"

running() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Real API calls (unsigned-but-well-formed SigV4 header: both emulators accept any credentials).
auth='AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/%s/aws4_request, SignedHeaders=host;x-amz-date, Signature=0'
ddb_ready() {
  curl -fsS -o /dev/null --max-time 2 -X POST "http://$ddb_host:$ddb_port/" \
    -H 'Content-Type: application/x-amz-json-1.0' -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
    -H "X-Amz-Date: 20250101T000000Z" -H "Authorization: $(printf "$auth" dynamodb)" -d '{}' 2>/dev/null
}
sqs_ready() {
  curl -fsS -o /dev/null --max-time 2 -X POST "http://$sqs_host:$sqs_port/" \
    -H 'Content-Type: application/x-amz-json-1.0' -H 'X-Amz-Target: AmazonSQS.ListQueues' \
    -H "X-Amz-Date: 20250101T000000Z" -H "Authorization: $(printf "$auth" sqs)" -d '{}' 2>/dev/null
}

# ---- dynalite ----
if running "$run/dynalite.pid"; then
  log "dynalite already running (pid $(cat "$run/dynalite.pid"))"
else
  command -v node >/dev/null || { log "node not found"; exit 1; }
  # abort-guard.js: dynalite 4.0.0 otherwise dies when a client aborts a request.
  setsid nohup node --max-old-space-size=256 --require "$here/dynalite/abort-guard.js" \
    "$tools/dynalite/node_modules/dynalite/cli.js" \
    --host "$ddb_host" --port "$ddb_port" \
    --createTableMs 0 --deleteTableMs 0 --updateTableMs 0 \
    >>"$logs/dynalite.log" 2>&1 </dev/null &
  echo $! >"$run/dynalite.pid"
  log "dynalite starting on $ddb_host:$ddb_port (pid $!, log $logs/dynalite.log)"
fi

# ---- the SQS emulator ----
if [[ "$sqs" == localstack ]]; then
  if running "$run/localstack.pid"; then
    log "LocalStack already running (pid $(cat "$run/localstack.pid"))"
  else
    version="$(sed -n 's/^localstack-core==//p' "$here/localstack-sqs/requirements.txt")"
    mkdir -p "$run/localstack/fs" "$run/localstack/tmp"
    # Same settings as shared/awstest's LocalStackEnv: SQS only, queue URLs
    # naming this address, no DNS server, no analytics, state under .run/.
    SERVICES=sqs EAGER_SERVICE_LOADING=1 GATEWAY_LISTEN="$sqs_host:$sqs_port" LOCALSTACK_HOST="$sqs_host:$sqs_port" \
      SQS_ENDPOINT_STRATEGY=off SQS_DISABLE_CLOUDWATCH_METRICS=1 DNS_ADDRESS=0 DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 \
      FILESYSTEM_ROOT="$run/localstack/fs" TMPDIR="$run/localstack/tmp" \
      setsid nohup "$tools/localstack-$version/bin/python" -m localstack.runtime.main \
      >>"$logs/localstack.log" 2>&1 </dev/null &
    echo $! >"$run/localstack.pid"
    log "LocalStack $version (SQS) starting on $sqs_host:$sqs_port (pid $!, log $logs/localstack.log)"
  fi
elif running "$run/elasticmq.pid"; then
  log "ElasticMQ already running (pid $(cat "$run/elasticmq.pid"))"
else
  command -v java >/dev/null || { log "java not found"; exit 1; }
  sed -e "s/@HOST@/$sqs_host/g" -e "s/@PORT@/$sqs_port/g" \
    "$here/elasticmq/elasticmq.conf.template" >"$run/elasticmq.conf"
  setsid nohup java -Xms32m -Xmx256m -Xss512k -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
    -Djava.net.preferIPv4Stack=true -Dconfig.file="$run/elasticmq.conf" \
    -cp "$tools/elasticmq/lib/*" org.elasticmq.server.Main \
    >>"$logs/elasticmq.log" 2>&1 </dev/null &
  echo $! >"$run/elasticmq.pid"
  log "ElasticMQ starting on $sqs_host:$sqs_port (pid $!, log $logs/elasticmq.log)"
fi

# ---- wait ----
deadline=$((SECONDS + timeout_s))
ddb_ok="" sqs_ok=""
while [[ -z "$ddb_ok" || -z "$sqs_ok" ]]; do
  [[ -z "$ddb_ok" ]] && ddb_ready && ddb_ok=1 && log "dynalite ready at http://$ddb_host:$ddb_port"
  [[ -z "$sqs_ok" ]] && sqs_ready && sqs_ok=1 && log "$sqs ready at http://$sqs_host:$sqs_port"
  [[ -n "$ddb_ok" && -n "$sqs_ok" ]] && break
  for n in dynalite "$sqs"; do
    if ! running "$run/$n.pid"; then
      log "$n exited; last lines of $logs/$n.log:"; tail -n 30 "$logs/$n.log" >&2 || true
      exit 1
    fi
  done
  if ((SECONDS >= deadline)); then
    log "emulators not ready after ${timeout_s}s"
    tail -n 30 "$logs/dynalite.log" "$logs/$sqs.log" >&2 || true
    exit 1
  fi
  sleep 0.2
done

cat <<INFO
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
AWS_ENDPOINT_URL_DYNAMODB=http://$ddb_host:$ddb_port
AWS_ENDPOINT_URL_SQS=http://$sqs_host:$sqs_port
INFO
