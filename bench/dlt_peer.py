"""Run dlt's ``rest_api`` source into dlt's duckdb destination, as a dlt user would; or count what it loaded.

    <dlt venv>/bin/python bench/dlt_peer.py run SPEC.json     # the measured run: one pipeline.run
    <dlt venv>/bin/python bench/dlt_peer.py count SPEC.json   # after it (not timed): distinct ids loaded

SPEC is written by ``bench_peers.py``: ``source`` is the ``RESTAPIConfig`` dict handed unchanged to
``dlt.sources.rest_api.rest_api_source`` (client base URL, auth, paginator, one resource), plus the
pipeline's name, its working directory, the duckdb file, the dataset, the table and its id column.
Runs inside dlt's own virtualenv: dlt, duckdb and the standard library only. dlt's anonymous
telemetry is switched off by the bench's environment (``RUNTIME__DLTHUB_TELEMETRY=false``), so the
only traffic is to the sandbox.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def run(spec: dict) -> None:  # type: ignore[type-arg]
    import dlt
    from dlt.sources.rest_api import rest_api_source

    pipeline = dlt.pipeline(pipeline_name=spec["pipeline"], pipelines_dir=spec["pipelines_dir"],
                            destination=dlt.destinations.duckdb(spec["duckdb"]), dataset_name=spec["dataset"])
    info = pipeline.run(rest_api_source(spec["source"]))
    info.raise_on_failed_jobs()


def count(spec: dict) -> int:  # type: ignore[type-arg]
    import duckdb

    def name(text: str) -> str:  # a quoted SQL identifier
        return '"' + text.replace('"', '""') + '"'

    query = "select count(distinct {}) from {}.{}".format(  # noqa: S608 - identifiers quoted above, no values
        name(spec["id_column"]), name(spec["dataset"]), name(spec["table"]))
    with duckdb.connect(spec["duckdb"], read_only=True) as con:
        row = con.execute(query).fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    verb, path = sys.argv[1], Path(sys.argv[2])
    spec = json.loads(path.read_text())
    if verb == "run":
        run(spec)
    elif verb == "count":
        print(count(spec))
    else:
        raise SystemExit(f"unknown verb {verb!r} (run | count)")


if __name__ == "__main__":
    main()
