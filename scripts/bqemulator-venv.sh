#!/usr/bin/env bash
# Makes .venv-bq/ with bqemulator (a BigQuery REST emulator on DuckDB) pinned in
# scripts/bqemulator-requirements.txt, which test/contract/bigquery.test.ts starts through
# scripts/bqemulator-launch.py. Called by .ci/run and the tests' global setup; run it by hand after
# changing a pin.
exec bash "$(dirname "$0")/pinned-venv.sh" .venv-bq scripts/bqemulator-requirements.txt bqemulator
