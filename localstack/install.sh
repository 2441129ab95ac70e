#!/usr/bin/env bash
# Installs the local AWS emulators into localstack/.tools/ from package registries only:
#   - dynalite (DynamoDB emulator, Node.js) from npm, pinned by localstack/dynalite/package-lock.json
#   - ElasticMQ (SQS emulator, JVM) from Maven Central, pinned by localstack/elasticmq/pom.xml
# Idempotent: a stamp (hash of the pinning files) skips work when nothing changed.
# Needs: node >= 18 + npm, JDK >= 17 + mvn.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="${WAHOOK_TOOLS_DIR:-$here/.tools}"
mkdir -p "$tools"

log() { printf 'install.sh: %s\n' "$*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || { log "missing '$1' on PATH: $2"; exit 1; }; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# ---- dynalite -------------------------------------------------------------
install_dynalite() {
  local dst="$tools/dynalite" stamp want
  want="dynalite:$(hash_of "$here/dynalite/package.json" "$here/dynalite/package-lock.json")"
  stamp="$dst/.installed"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -f "$dst/node_modules/dynalite/cli.js" ]]; then
    log "dynalite up to date"
    return
  fi
  need node "install Node.js >= 18"
  need npm "install npm"
  log "installing dynalite (npm ci)"
  local tmp
  tmp="$(mktemp -d "$tools/.dynalite.XXXXXX")"
  cp "$here/dynalite/package.json" "$here/dynalite/package-lock.json" "$tmp/"
  # --ignore-scripts: the only install script is classic-level's node-gyp-build,
  # which ships prebuilt binaries anyway; dynalite runs in memory (memory-level).
  (cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  echo "$want" >"$tmp/.installed"
  rm -rf "$dst"
  mv "$tmp" "$dst"
  log "dynalite installed in $dst"
}

# ---- ElasticMQ ------------------------------------------------------------
install_elasticmq() {
  local dst="$tools/elasticmq" stamp want
  want="elasticmq:$(hash_of "$here/elasticmq/pom.xml")"
  stamp="$dst/.installed"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && compgen -G "$dst/lib/elasticmq-server_*.jar" >/dev/null; then
    log "elasticmq up to date"
    return
  fi
  need java "install a JDK >= 17"
  need mvn "install Maven >= 3.8"
  log "installing ElasticMQ (mvn dependency:copy-dependencies)"
  local tmp
  tmp="$(mktemp -d "$tools/.elasticmq.XXXXXX")"
  mvn -B -q -Dstyle.color=never -f "$here/elasticmq/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$tmp/lib" >&2
  echo "$want" >"$tmp/.installed"
  rm -rf "$dst"
  mv "$tmp" "$dst"
  log "ElasticMQ installed in $dst"
}

install_dynalite
install_elasticmq
