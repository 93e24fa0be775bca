"""Build (or find) the previous release's environment and print its Python: ``make test`` runs this
(``make compat-env``) before pytest, so the build's minute or so is not spent inside a test's timeout.

The builder is :func:`cordon.testing.previous_release_python`; the release is the last line of
``RELEASES``. tests/test_compat_system.py and tests/test_upgrade.py run it. ``CLUSTER_BEFORE_12``, the
older side of tests/test_upgrade_cluster.py (a cluster cannot run r1), is built the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cordon.testing import Release, ReleaseError, previous_release_python

REPO = Path(__file__).resolve().parents[1]
#: main before the merge that brought PostgreSQL migration 12 (the list changes' log, the alerts' news by
#: time): two hubs sharing one database and the broker's events, with eleven migrations.
CLUSTER_BEFORE_12 = Release("f94ab1b24f139182842c317c71590a091c537e3c", "main before migration 12")


def main() -> None:
    try:
        for release in (None, CLUSTER_BEFORE_12):
            print(previous_release_python(REPO, release, say=lambda line: print(line, flush=True)))
    except ReleaseError as exc:
        sys.exit(f"tests/compat.py: {exc}")


if __name__ == "__main__":
    main()
