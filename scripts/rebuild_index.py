#!/usr/bin/env python3
"""Rebuild the Veraclaim index from a scheduler: cron, a systemd timer or a Kubernetes CronJob.

Usage: rebuild_index.py SOURCE --out INDEX_DIR [--report FILE] [--publish-to s3://bucket/prefix]

This is `veraclaim-index rebuild` under a name that schedulers can call without the
console script on PATH. It takes the index folder's lock, so two runs never overlap, and
the second exits at once with code 3. Exit codes and the report format are described in
docs/rebuild.md.

With VERACLAIM_EVAL_GOLDEN set, a new version is published only if its hybrid recall@5 on
that golden set is at least VERACLAIM_EVAL_MIN_RECALL_AT_5 and at most
VERACLAIM_EVAL_MAX_DROP below the current version's. A rejected version is kept in
INDEX_DIR/rejected/<id>, CURRENT stays as it was, and the run exits with code 1
(docs/retrieval.md).
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    # No telemetry from a scheduled job. The default embedding model comes from a PyPI
    # package, so the build itself needs no model hub.
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

    from index_builder.cli import app

    app(["rebuild", *sys.argv[1:]], prog_name="rebuild_index.py")


if __name__ == "__main__":
    main()
