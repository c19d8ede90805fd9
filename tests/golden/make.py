"""Record the golden results: ``python -m tests.golden.make`` (from the repository root).

Run it only when a change is meant to move bits (say so in the commit and in the docs); it
records every case of :mod:`tests.golden.cases` with the provenance of this process.
"""

from __future__ import annotations

import json
from pathlib import Path

from deepstock import numerics

numerics.configure()  # before torch and XLA load, as the CLI and the tests do

from deepstock import provenance  # noqa: E402
from tests.golden.cases import CASES  # noqa: E402

OUT = Path(__file__).with_name("goldens.json")


def main() -> None:
    goldens = {name: case() for name, case in CASES.items()}
    record = provenance.record()
    OUT.write_text(json.dumps({"provenance": record, "cases": goldens}, indent=1,
                              sort_keys=True) + "\n")
    print(f"wrote {OUT} ({len(goldens)} cases, stack {record['stack_hash']})")


if __name__ == "__main__":
    main()
