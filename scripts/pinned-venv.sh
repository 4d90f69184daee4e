#!/usr/bin/env bash
# Usage: scripts/pinned-venv.sh VENV REQUIREMENTS LABEL
# Makes the Python venv VENV (git-, lint- and format-ignored) with exactly the pins of REQUIREMENTS.
# Idempotent and quiet: it rebuilds only when a pin changed (the stamp, written last, is the hash of the
# file's lines less comments and blank lines), so a re-run costs one sha256sum. pip's output is shown
# only if the install fails. Needs python3 >= 3.11 and PyPI. Wrapped by bqemulator-venv.sh and dbt-venv.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=$1
requirements=$2
label=$3
# One at a time: a second run waits, then finds the venv made.
exec 9>"$venv.lock"
flock 9
want=$(grep -Ev '^[[:space:]]*(#|$)' "$requirements" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" = "$want" ]; then exit 0; fi

echo "installing $label into $venv"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rm -rf "$venv"
if python3 -m venv "$venv" >"$log" 2>&1 &&
  "$venv/bin/pip" install --quiet --disable-pip-version-check --requirement "$requirements" >>"$log" 2>&1; then
  echo "$want" >"$venv/.requirements.sha256"
else
  cat "$log"
  echo "could not install $label into $venv"
  exit 1
fi
