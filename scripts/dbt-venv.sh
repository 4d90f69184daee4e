#!/usr/bin/env bash
# Makes .venv-dbt/ with dbt-core and dbt-postgres pinned in scripts/dbt-requirements.txt, which
# test/e2e/dbt.test.ts runs to build test/fixtures/dbt/. Called by .ci/run and the tests' global setup;
# run it by hand after changing a pin.
exec bash "$(dirname "$0")/pinned-venv.sh" .venv-dbt scripts/dbt-requirements.txt "dbt-core and dbt-postgres"
