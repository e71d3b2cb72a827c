"""The example build job of examples/words: real code that reads and writes partitions.

One program for the three JobDefinitions (`python words.py generate|count|weekly`). A
partition `a/b/k=v` is the directory `$DATA_DIR/<namespace>/a/b/k=v`; a build writes it atomically
(into a temporary directory, then one rename). It follows the job protocol: the
partitions to build come in `DATABUILD_PARTITIONS` and the resolved inputs in
`DATABUILD_INPUTS` (JSON lists); exit 0 means every output was written; an input
discovered only at run time is reported as a dependency miss through the termination
message, with a non-zero exit.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

# One directory per namespace: partition refs are unique within a namespace only.
DATA = Path(os.environ.get("DATA_DIR", "/data")) / os.environ.get("DATA_NAMESPACE", "")
TERMINATION_LOG = Path(os.environ.get("TERMINATION_LOG", "/dev/termination-log"))
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
]


def fields(ref: str) -> dict[str, str]:
    """`words/count/date=2025-01-06` -> {"date": "2025-01-06"}."""
    return dict(part.split("=", 1) for part in ref.split("/") if "=" in part)


def write(ref: str, name: str, text: str) -> None:
    """Write one file of partition `ref` atomically: all of it appears at once or none."""
    final = DATA / ref
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    (staging / name).write_text(text)
    if final.exists():  # idempotent: a re-run replaces the partition
        for old in final.iterdir():
            old.unlink()
        final.rmdir()
    staging.rename(final)
    print(f"wrote {final / name} ({len(text)} bytes)")


def generate(ref: str) -> None:
    """Raw words of one day: deterministic for the date, so re-runs write the same."""
    date = fields(ref)["date"]
    rng = random.Random(date)
    write(ref, "words.txt", " ".join(rng.choice(WORDS) for _ in range(200)) + "\n")


def count(ref: str) -> None:
    """Word counts of one day, from its raw partition (a declared input)."""
    (source,) = json.loads(os.environ["DATABUILD_INPUTS"])
    text = (DATA / source / "words.txt").read_text()
    print(f"read {DATA / source / 'words.txt'}")
    write(ref, "counts.json", json.dumps(Counter(text.split()), sort_keys=True) + "\n")


def weekly(ref: str) -> int:
    """A week's totals. Which days it needs is learnt only now: missing ones are a miss."""
    year, week = fields(ref)["week"].split("-W")
    monday = dt.date.fromisocalendar(int(year), int(week), 1)
    days = [f"words/count/date={monday + dt.timedelta(days=i)}" for i in range(7)]
    missing = [day for day in days if not (DATA / day / "counts.json").is_file()]
    if missing:
        TERMINATION_LOG.write_text(json.dumps({"missingPartitions": missing}))
        print(f"dependency miss: {len(missing)} of {len(days)} days not built yet")
        return 3
    total: Counter[str] = Counter()
    for day in days:
        total.update(json.loads((DATA / day / "counts.json").read_text()))
    write(ref, "totals.json", json.dumps(dict(total.most_common()), indent=1) + "\n")
    return 0


def main(argv: list[str]) -> int:
    """Build every partition of DATABUILD_PARTITIONS with the step named in argv."""
    step = argv[1] if len(argv) > 1 else ""
    refs = json.loads(os.environ["DATABUILD_PARTITIONS"])
    print(f"{step}: building {refs} (run {os.environ.get('DATABUILD_JOB_RUN', '?')})")
    for ref in refs:
        if step == "generate":
            generate(ref)
        elif step == "count":
            count(ref)
        elif step == "weekly":
            code = weekly(ref)
            if code:
                return code
        else:
            print(f"unknown step {step!r}: use generate, count or weekly", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
