"""GitOps under real Flux: examples/gitops from a git repository, health read by Flux.

Flux's source-controller and kustomize-controller (built by ``make flux``) run against
the local control plane; each test commits ``examples/gitops`` (pointed at the test's
namespace) to a repository served over HTTP on loopback, points a GitRepository and a
Kustomization with ``wait: true`` at it and looks only at what a GitOps user sees:
the Kustomization's Ready condition, and the objects in the cluster.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from e2e_support import Scenario, jobdef
from tests.manifests import want

from databuild.testing._flux import FLUX_NAMESPACE, Flux
from databuild.testing._gitserver import GitRepository, GitServer
from databuild.testing.demo import (
    KubeError,
    delete_object,
    request,
    wait_until,
    want_state,
)
from databuild.testing.outcomes import simulated

if TYPE_CHECKING:
    from databuild.testing import Cluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "gitops"
EXAMPLE_WANT = "daily-summary-2025-01-01"
TIMEOUT = "3m"  # the Kustomization's health-check timeout; failures must come sooner
KUSTOMIZATIONS = f"/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{FLUX_NAMESPACE}/kustomizations"
GIT_REPOSITORIES = f"/apis/source.toolkit.fluxcd.io/v1/namespaces/{FLUX_NAMESPACE}/gitrepositories"


@pytest.fixture(scope="module")
def flux(
    control_plane: Cluster, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flux]:
    """Flux's controllers, running against the session's control plane."""
    run_dir = tmp_path_factory.mktemp("flux")
    controllers = Flux(Path(control_plane.kubeconfig), run_dir=run_dir)
    controllers.start()
    try:
        yield controllers
    finally:
        controllers.stop()


@pytest.fixture(scope="module")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    """A git server on loopback."""
    with GitServer(tmp_path_factory.mktemp("git")) as server:
        yield server


class GitOps:
    """One test's repository, its GitRepository and Kustomization, and the namespace."""

    def __init__(self, sc: Scenario, flux: Flux, repo: GitRepository) -> None:
        self.sc = sc
        self.flux = flux
        self.repo = repo
        self.name = sc.namespace

    def commit_example(
        self, message: str, *, without: tuple[str, ...] = (), extra: str = ""
    ) -> str:
        """Commit examples/gitops, in this test's namespace, minus ``without`` files
        and plus ``extra`` manifests (in extra.yaml)."""
        for child in self.repo.path.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        shutil.copytree(
            EXAMPLE, self.repo.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("argocd")
        )
        kustomization = yaml.safe_load((EXAMPLE / "kustomization.yaml").read_text())
        kustomization["namespace"] = self.name
        kustomization["resources"] = [r for r in kustomization["resources"] if r not in without]
        if extra:
            kustomization["resources"].append("extra.yaml")
            (self.repo.path / "extra.yaml").write_text(extra)
        for name in without:
            (self.repo.path / name).unlink()
        (self.repo.path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        namespace = yaml.safe_load((EXAMPLE / "namespace.yaml").read_text())
        namespace["metadata"]["name"] = self.name
        (self.repo.path / "namespace.yaml").write_text(yaml.safe_dump(namespace))
        return self.repo.commit(message)

    def point_flux(self, *, wait: bool = True) -> None:
        """Create the GitRepository and the Kustomization (prune, and wait unless told)."""
        meta = {"name": self.name, "namespace": FLUX_NAMESPACE}
        request(
            self.sc.kube,
            "POST",
            GIT_REPOSITORIES,
            {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": meta,
                "spec": {"interval": "2s", "url": self.repo.url, "ref": {"branch": "main"}},
            },
        )
        request(
            self.sc.kube,
            "POST",
            KUSTOMIZATIONS,
            {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": meta,
                "spec": {
                    "interval": "10m",
                    "retryInterval": "5s",
                    "path": "./",
                    "prune": True,
                    "wait": wait,
                    "timeout": TIMEOUT,
                    "sourceRef": {"kind": "GitRepository", "name": self.name},
                },
            },
        )

    def kustomization(self) -> dict[str, Any]:
        """The Kustomization as it is now."""
        return request(self.sc.kube, "GET", f"{KUSTOMIZATIONS}/{self.name}")

    def ready(self) -> dict[str, Any]:
        """The Kustomization's Ready condition ({} before it has one)."""
        status = self.kustomization().get("status") or {}
        return next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})

    def wait_ready(self, status: str, revision: str, timeout: float = 150) -> dict[str, Any]:
        """Wait until Ready has ``status`` for the commit ``revision``."""

        def check() -> dict[str, Any] | None:
            self.flux.check()
            k = self.kustomization().get("status") or {}
            ready = next((c for c in k.get("conditions") or [] if c["type"] == "Ready"), {})
            attempted = str(k.get("lastAttemptedRevision", ""))
            if ready.get("status") == status and attempted.endswith(revision):
                return ready
            return None

        return wait_until(
            check,
            timeout=timeout,
            interval=0.5,
            what=f"Kustomization {self.name} Ready={status} at {revision[:8]}",
            describe=self.describe,
        )

    def describe(self) -> str:
        """The Kustomization, the namespace and the controllers' logs."""
        k = yaml.safe_dump((self.kustomization().get("status") or {}), width=120)
        return f"--- Kustomization status ---\n{k}\n{self.sc.describe()}\n{self.flux.log_tail(20)}"

    def remove(self) -> None:
        """Delete the Kustomization without pruning (the namespace and CRDs stay)."""
        try:
            request(
                self.sc.kube,
                "PATCH",
                f"{KUSTOMIZATIONS}/{self.name}",
                {"spec": {"prune": False}},
                content_type="application/merge-patch+json",
            )
            request(self.sc.kube, "DELETE", f"{KUSTOMIZATIONS}/{self.name}")
            request(self.sc.kube, "DELETE", f"{GIT_REPOSITORIES}/{self.name}")
        except KubeError:
            pass


@pytest.fixture
def gitops(scenario: Scenario, flux: Flux, git_server: GitServer) -> Iterator[GitOps]:
    """A test's namespace with its operator running, a repository and Flux pointed at it."""
    scenario.start_operator()
    g = GitOps(scenario, flux, git_server.repository(scenario.namespace))
    try:
        yield g
    finally:
        g.remove()


def _finished_at(sc: Scenario, name: str) -> str:
    w = sc.get("Want", name)
    assert w is not None
    return str(w["status"]["finishedAt"])


def test_kustomization_is_ready_only_once_every_want_is_successful(gitops: GitOps) -> None:
    g, sc = gitops, gitops.sc
    slow = jobdef("slow", ["slow/date={date}"], **simulated(duration="8s"))
    extra = yaml.safe_dump_all([slow, want("slow-2025-01-01", ["slow/date=2025-01-01"])])
    revision = g.commit_example("the example, and a Want that takes 8 s", extra=extra)
    g.point_flux()
    seen_not_ready_while_building = False

    def ready_or_progressing() -> bool:
        nonlocal seen_not_ready_while_building
        wants = {w["metadata"]["name"]: want_state(w) for w in sc.list("Want")}
        ready = g.ready()
        if ready.get("status") == "True":
            return True
        if wants and any(s != "Successful" for s in wants.values()):
            seen_not_ready_while_building = True
        return False

    wait_until(
        ready_or_progressing,
        timeout=150,
        interval=0.5,
        what="the Kustomization to become Ready",
        describe=g.describe,
    )
    ready = g.wait_ready("True", revision)
    print(f"\nready: {ready['reason']}: {ready['message']}")
    assert seen_not_ready_while_building, "Flux never waited for a Want that was building"
    # Ready came after the last Want became Successful.
    last = max(_finished_at(sc, n) for n in (EXAMPLE_WANT, "slow-2025-01-01"))
    assert ready["lastTransitionTime"] >= last[:19] + "Z", (ready, last)
    for name in (EXAMPLE_WANT, "slow-2025-01-01"):
        sc.wait_for_want(name, "Successful", timeout=1)


def test_a_failing_want_fails_the_kustomization_before_its_timeout(gitops: GitOps) -> None:
    g, sc = gitops, gitops.sc
    broken = jobdef(
        "broken", ["broken/date={date}"], **simulated("fail", exit_code=3, message="disk full")
    )
    extra = yaml.safe_dump_all([broken, want("broken-2025-01-01", ["broken/date=2025-01-01"])])
    revision = g.commit_example("a Want whose job fails", extra=extra)
    started = time.monotonic()
    g.point_flux()
    ready = g.wait_ready("False", revision)
    wait_until(
        lambda: "broken-2025-01-01" in g.ready().get("message", ""),
        timeout=120,
        interval=0.5,
        what="the Kustomization to name the failed Want",
        describe=g.describe,
    )
    ready = g.ready()
    elapsed = time.monotonic() - started
    assert ready["reason"] == "HealthCheckFailed", ready
    assert "Failed" in ready["message"], ready
    assert elapsed < 170, f"reported after {elapsed:.0f}s: that is the timeout, not the failure"
    print(
        f"\nFlux reported the failed Want {elapsed:.1f}s after the Kustomization was "
        f"created: {ready['message']}"
    )
    # The healthy example beside it still builds.
    sc.wait_for_want(EXAMPLE_WANT, "Successful")


def test_a_want_committed_before_its_job_definition_ends_ready(gitops: GitOps) -> None:
    g, sc = gitops, gitops.sc
    first = g.commit_example("the Want only", without=("jobdefinitions.yaml",))
    g.point_flux()
    waiting = g.wait_ready("False", first)
    wait_until(
        lambda: EXAMPLE_WANT in g.ready().get("message", ""),
        timeout=120,
        interval=0.5,
        what="the Kustomization to name the waiting Want",
        describe=g.describe,
    )
    waiting = g.ready()
    print(f"\nwaiting: {waiting['reason']}: {waiting['message']}")
    w = sc.get("Want", EXAMPLE_WANT)
    assert w is not None and want_state(w) == "Pending", w
    started = time.monotonic()
    second = g.commit_example("the JobDefinitions too")
    g.wait_ready("True", second)
    print(f"Ready {time.monotonic() - started:.1f}s after the JobDefinitions were committed")
    sc.wait_for_want(EXAMPLE_WANT, "Successful", timeout=1)


def test_removing_a_want_from_git_deletes_it_cancels_its_build_and_keeps_partitions(
    gitops: GitOps,
) -> None:
    g, sc = gitops, gitops.sc
    slow = jobdef("slow", ["slow/date={date}"], **simulated(duration="600s"))
    extra = yaml.safe_dump_all([slow, want("slow-2025-01-01", ["slow/date=2025-01-01"])])
    # Without wait: Flux would otherwise wait for the 10-minute build before it takes
    # the next commit (unless its CancelHealthCheckOnNewRevision gate is on).
    g.commit_example("the example and a slow Want", extra=extra)
    g.point_flux(wait=False)
    sc.wait_for_want(EXAMPLE_WANT, "Successful", timeout=120)
    sc.wait_for_want("slow-2025-01-01", "Building", timeout=60)
    [slow_run] = sc.runs_of("slow")
    before = {p["spec"]["ref"]: p["status"].get("state") for p in sc.list("Partition")}

    revision = g.commit_example("no Wants", without=("wants.yaml",), extra=yaml.safe_dump(slow))
    g.wait_ready("True", revision)
    wait_until(
        lambda: not sc.list("Want"), timeout=60, what="Flux to prune the Wants", describe=g.describe
    )

    def cancelled() -> bool:
        run = sc.get("JobRun", slow_run["metadata"]["name"])
        # The operator writes the JobRun's status before the Partition's: wait for both.
        partition = sc.partition("slow/date=2025-01-01")
        return (
            run is not None
            and run["status"].get("state") == "Cancelled"
            and partition["status"].get("state") == "Missing"
        )

    wait_until(cancelled, timeout=60, what="the slow build to be cancelled", describe=g.describe)
    after = {p["spec"]["ref"]: p["status"].get("state") for p in sc.list("Partition")}
    assert after.keys() == before.keys(), "Partitions outlive the Wants"
    assert after["slow/date=2025-01-01"] == "Missing"
    assert {r: s for r, s in after.items() if s == "Live"} == {
        r: s for r, s in before.items() if s == "Live"
    }
    # The JobDefinitions stay: they are still in git.
    assert sc.get("JobDefinition", "slow") is not None
    delete_object(sc.kube, "JobDefinition", sc.namespace, "slow")
