"""Build (or find) the previous release's environment and print its Python: ``make test`` runs this
(``make compat-env``) before pytest, so the build's minute or so is not spent inside a test's timeout.

The builder is :func:`cordon.testing.previous_release_python`; the release is the last line of
``RELEASES``. tests/test_compat_system.py and tests/test_upgrade.py run it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cordon.testing import ReleaseError, previous_release_python

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    try:
        print(previous_release_python(REPO, say=lambda line: print(line, flush=True)))
    except ReleaseError as exc:
        sys.exit(f"tests/compat.py: {exc}")


if __name__ == "__main__":
    main()
