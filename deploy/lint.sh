#!/usr/bin/env bash
# Lints the ECS stack (deploy/ecs/wahook.json) with cfn-lint, installed from
# PyPI at the versions pinned in deploy/requirements-cfn-lint.txt into a venv
# under the tools folder (localstack/.tools, or WAHOOK_TOOLS_DIR).
# Idempotent: a stamp (hash of the pins and the Python version) skips the
# install when nothing changed. Needs python3 with the venv module.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
tools="${WAHOOK_TOOLS_DIR:-$root/localstack/.tools}"
python="${PYTHON:-python3}"
venv="$tools/cfn-lint"
log() { printf 'lint.sh: %s\n' "$*" >&2; }

command -v "$python" >/dev/null || { log "missing $python: install Python 3.9+ with venv"; exit 1; }
want="cfn-lint:$(cat "$here/requirements-cfn-lint.txt" | sha256sum | cut -d' ' -f1):$("$python" -c 'import sys; print(sys.version.split()[0])')"
if [[ ! -f "$venv/.installed" || "$(cat "$venv/.installed")" != "$want" || ! -x "$venv/bin/cfn-lint" ]]; then
  log "installing cfn-lint into $venv"
  # Built in place (a venv's scripts name its path); the stamp comes last, so
  # an interrupted install is redone on the next run.
  rm -rf "$venv"
  mkdir -p "$tools"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --disable-pip-version-check --no-input -q --no-deps \
    -r "$here/requirements-cfn-lint.txt" >&2
  echo "$want" >"$venv/.installed"
fi

template="$root/deploy/ecs/wahook.json"
log "$("$venv/bin/cfn-lint" --version) on ${template#"$root"/}"
# Errors and warnings, then the informational checks too: the stack is clean of both.
"$venv/bin/cfn-lint" -- "$template"
"$venv/bin/cfn-lint" --include-checks I -- "$template"
log "cfn-lint ok"
