"""The demo's real work: examples/words built by real containers on the real node.

Used by ``make demo`` when the control plane has a real node. The example's image is
built here (``hack/build-image.sh example``) and imported into the node's containerd;
its JobDefinitions write partitions as directories under a hostPath volume, so the
demo can show the data afterwards. The weekly job learns at run time which days it
needs and reports them through ``/dev/termination-log``: a real dependency miss.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from databuild.testing import _node

#: The hostPath the example's JobDefinitions mount (examples/words/01-jobdefinitions.yaml).
DATA_ROOT = Path("/var/lib/databuild-example")
#: The build job's uid (examples/words/job/Dockerfile), which must write the data.
JOB_UID = 65532


@dataclass(frozen=True)
class RealWork:
    """examples/words for one namespace, on the node whose containerd is at `socket`."""

    root: Path
    socket: Path
    namespace: str

    @property
    def data(self) -> Path:
        """The namespace's data directory on the node (its partitions)."""
        return DATA_ROOT / self.namespace

    def prepare(self) -> list[dict[str, Any]]:
        """Build and import the image, make the data directory; return the manifests."""
        out = subprocess.run(
            [str(self.root / "hack" / "build-image.sh"), "example"],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"hack/build-image.sh example failed: {out.stderr[-2000:]}")
        image = out.stdout.split()[-1]
        _node.import_image(self.socket, image, self.data.parent / ".images")
        self.data.mkdir(parents=True, exist_ok=True)
        DATA_ROOT.chmod(0o755)
        shutil.chown(self.data, JOB_UID, JOB_UID)
        docs: list[dict[str, Any]] = []
        for path in sorted((self.root / "examples" / "words").glob("*.yaml")):
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
        return docs

    def report(self) -> str:
        """What the builds wrote: every file with its size, and the week's top words."""
        lines = [f"data written by the real builds ({self.data}):"]
        for path in sorted(p for p in self.data.rglob("*") if p.is_file()):
            lines.append(f"  {path.relative_to(self.data)}  {path.stat().st_size} bytes")
        for totals in sorted(self.data.glob("words/weekly/*/totals.json")):
            top = list(json.loads(totals.read_text()).items())[:5]
            shown = ", ".join(f"{word} {count}" for word, count in top)
            lines.append(f"  {totals.parent.name}: top words {shown}")
        return "\n".join(lines)

    def cleanup(self) -> None:
        """Remove the namespace's data."""
        shutil.rmtree(self.data, ignore_errors=True)


def real_node_socket(plane_socket: Path | None, state_dir: Path) -> Path | None:
    """containerd's socket of the real node: the demo's own, or `make cluster-up`'s."""
    if plane_socket is not None:
        return plane_socket
    try:
        state = json.loads((state_dir / "cluster" / "state.json").read_text())
    except (OSError, ValueError):
        return None
    real = state.get("real_node") or {}
    socket = Path(real["directory"]) / "containerd.sock" if real.get("directory") else None
    return socket if socket is not None and socket.exists() else None
