#!/usr/bin/env bash
# Installs the local AWS emulators into localstack/.tools/ from package registries only:
#   - dynalite (DynamoDB emulator, Node.js) from npm, pinned by localstack/dynalite/package-lock.json
#   - ElasticMQ (SQS emulator, JVM) from Maven Central, pinned by localstack/elasticmq/pom.xml
#   - LocalStack's SQS on the host (Python >= 3.12) from PyPI, every package pinned by
#     localstack/localstack-sqs/requirements.txt, in a venv: .tools/localstack-<version>
# Usage: install.sh [dynalite] [elasticmq] [localstack]   (no argument: all three)
# Idempotent: a stamp (hash of the pinning files) skips work when nothing changed.
# Needs: node >= 18 + npm, JDK >= 17 + mvn, Python >= 3.12 with venv (python3.13 or
# python3.12 on PATH, a pyenv version, or WAHOOK_PYTHON=/path/to/python).
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

# ---- LocalStack (SQS only, on the host) ------------------------------------
localstack_version() { sed -n 's/^localstack-core==//p' "$here/localstack-sqs/requirements.txt"; }

# python_ok PY: PY runs and is >= 3.12 with venv (a pyenv shim for a version
# not selected exists on PATH but fails to run: that is a no).
python_ok() {
  "$1" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

find_python() {
  local c root d
  if [[ -n "${WAHOOK_PYTHON:-}" ]]; then
    python_ok "$WAHOOK_PYTHON" && { echo "$WAHOOK_PYTHON"; return; }
    log "WAHOOK_PYTHON=$WAHOOK_PYTHON is not a Python >= 3.12 with venv"; return 1
  fi
  for c in python3.13 python3.12 python3; do
    if command -v "$c" >/dev/null 2>&1 && python_ok "$c"; then command -v "$c"; return; fi
  done
  root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
  for d in $(ls -d "$root"/versions/3.1[3-9]* "$root"/versions/3.12* 2>/dev/null | sort -rV); do
    for c in "$d"/bin/python3.1[2-9] "$d/bin/python3"; do
      [[ -x "$c" ]] && python_ok "$c" && { echo "$c"; return; }
    done
  done
  return 1
}

install_localstack() {
  local version dst stamp want py
  version="$(localstack_version)"
  dst="$tools/localstack-$version"
  want="localstack:$(hash_of "$here/localstack-sqs/requirements.txt")"
  stamp="$dst/.installed"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$dst/bin/python" ]]; then
    log "localstack $version up to date"
    return
  fi
  if ! py="$(find_python)"; then
    log "LocalStack's SQS needs Python >= 3.12 with venv (its SQS code uses 3.12 syntax); none found:"
    log "  tried WAHOOK_PYTHON, python3.13/python3.12/python3 on PATH, and $(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")/versions/3.1[2-9]*."
    log "  Install one (pyenv install 3.13, or apt-get install python3.12-venv) or set WAHOOK_PYTHON=/path/to/python3.12+"
    exit 1
  fi
  log "installing LocalStack $version (SQS) with $py ($("$py" --version 2>&1)) into $dst"
  # Built in place (a venv's scripts name its path); the stamp, written last,
  # marks it complete. The lock keeps two installs from sharing the folder.
  exec 9>"$tools/.localstack.lock"
  flock 9
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$dst/bin/python" ]]; then
    log "localstack $version installed meanwhile"
    exec 9>&-
    return
  fi
  rm -rf "$dst"
  "$py" -m venv "$dst"
  "$dst/bin/python" -m pip install -q --disable-pip-version-check --no-input --no-deps \
    -r "$here/localstack-sqs/requirements.txt" >&2
  "$dst/bin/python" -c 'import localstack.runtime.main' || { log "LocalStack in $dst does not import"; exit 1; }
  echo "$want" >"$stamp"
  exec 9>&-
  log "LocalStack $version installed in $dst"
}

if (($# == 0)); then set -- dynalite elasticmq localstack; fi
for what in "$@"; do
  case "$what" in
  dynalite) install_dynalite ;;
  elasticmq) install_elasticmq ;;
  localstack) install_localstack ;;
  *) log "unknown component '$what' (dynalite, elasticmq, localstack)"; exit 2 ;;
  esac
done
