"""Starts bqemulator (a DuckDB-backed BigQuery REST emulator) for Tailor's BigQuery contract test.

Run with the Python of the venv that scripts/bqemulator-venv.sh makes
(`.venv-bq/bin/python`), as the test helper test/helpers/bqemulator.ts does.
Differences from `bqemulator start`:

- DuckDB's `spatial` extension is not installed: bqemulator's engine runs `INSTALL spatial` at start,
  which downloads it from extensions.duckdb.org (unreachable from CI, and no wheel of it exists for the
  pinned duckdb). Tailor never uses GEOGRAPHY, so loading it is skipped. The `avro` extension (also a
  download, best-effort upstream) is turned off for the same reason.
- The REST and gRPC servers bind free loopback ports; once both listen, one line
  `BQEMULATOR_READY {"rest_url": "http://127.0.0.1:<port>", "project": "<id>"}` is written to stdout.
- The query-result cache is off, so every query runs against the tables as they are now.
- It stops on SIGTERM/SIGINT, and also when stdin closes: if the test process dies, so does the emulator.

Usage: python scripts/bqemulator-launch.py [--project ID] [--log-level warning]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

from bqemulator.config import LogFormat, LogLevel, PersistenceMode, Settings
from bqemulator.observability.logging_ import configure_logging

parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
parser.add_argument("--project", default="tailor-test", help="the default project id")
parser.add_argument("--log-level", default="warning", choices=[level.value for level in LogLevel])
args = parser.parse_args()

# Before the server modules are imported (some of them log at import): logs go to stderr, at the level
# asked for, so that stdout carries only the ready line.
configure_logging(level=LogLevel(args.log_level), fmt=LogFormat.CONSOLE)

from bqemulator.server import EmulatorServer  # noqa: E402
from bqemulator.storage.engine import DuckDBEngine  # noqa: E402


def _skip_spatial(self: DuckDBEngine) -> None:
    """Replaces DuckDBEngine._load_spatial: no GEOGRAPHY, no download."""


DuckDBEngine._load_spatial = _skip_spatial  # type: ignore[method-assign]


async def main() -> None:
    settings = Settings(
        rest_host="127.0.0.1",
        rest_port=0,
        grpc_host="127.0.0.1",
        grpc_port=0,
        persistence_mode=PersistenceMode.EPHEMERAL,
        default_project_id=args.project,
        enable_format_extensions=False,
        query_cache_ttl_seconds=0,
        metrics_enabled=False,
        log_level=LogLevel(args.log_level),
        log_format=LogFormat.CONSOLE,
    )
    server = EmulatorServer(settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def on_stdin() -> None:
        if not os.read(0, 65536):  # EOF: the parent closed the pipe, or exited
            loop.remove_reader(0)
            stop.set()

    try:
        loop.add_reader(0, on_stdin)
    except (OSError, ValueError):
        pass  # stdin is not a pipe (a file, /dev/null): signals only
    await server.start()
    try:
        ready = {"rest_url": server.rest_url, "project": args.project}
        print("BQEMULATOR_READY " + json.dumps(ready), flush=True)
        await stop.wait()
    finally:
        await server.stop()


asyncio.run(main())
