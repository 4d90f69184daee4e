#!/usr/bin/env bash
# Makes the venv of dbt-core and dbt-postgres, which test/e2e/dbt.test.ts
# runs to build test/fixtures/dbt/: .venv-dbt/ (git-, lint- and format-ignored)
# with exactly the pins of scripts/dbt-requirements.txt. Idempotent and quiet: it rebuilds only
# when a pin changed (the stamp, written last, is the hash of the file's lines less comments and blank
# lines), so a re-run costs one sha256sum. pip's output is shown only if the install fails.
# Called by .ci/run; run it by hand after changing a pin (needs python3 >= 3.11 and PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-dbt
requirements=scripts/dbt-requirements.txt
# One at a time: a second run waits, then finds the venv made.
exec 9>.venv-dbt.lock
flock 9
want=$(grep -Ev '^[[:space:]]*(#|$)' "$requirements" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" = "$want" ]; then exit 0; fi

echo "installing dbt-core and dbt-postgres into $venv"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rm -rf "$venv"
if python3 -m venv "$venv" >"$log" 2>&1 &&
  "$venv/bin/pip" install --quiet --disable-pip-version-check --requirement "$requirements" >>"$log" 2>&1; then
  echo "$want" >"$venv/.requirements.sha256"
else
  cat "$log"
  echo "could not install dbt into $venv"
  exit 1
fi
