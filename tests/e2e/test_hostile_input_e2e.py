"""Hostile input on the real control plane: the error stays with the object that made it.

One operator serves two namespaces for the whole module and is never restarted: ``bad``
receives each test's hostile objects (they stay there for the tests after it), while
``healthy`` must keep finishing builds. Every test ends by building a fresh Want in
``healthy`` and checking that the operator process is the one that started.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from e2e_support import TERMINAL, free_port, jobdef
from tests.manifests import want

from databuild.testing.demo import (
    KubeError,
    OperatorProcess,
    condition,
    create_object,
    delete_object,
    get_object,
    list_objects,
    request,
    summary,
    wait_until,
    want_state,
)

if TYPE_CHECKING:
    from databuild.testing import Cluster
    from databuild.testing.kube import Kube

pytestmark = pytest.mark.usefixtures("crds")

BUILD_TIMEOUT = 120  # a loaded CI machine; healthy builds take seconds


class Hostile:
    """The two namespaces, the operator serving both, and helpers."""

    def __init__(self, kube: Kube, bad: str, healthy: str, operator: OperatorProcess) -> None:
        self.kube = kube
        self.bad = bad
        self.healthy = healthy
        self.operator = operator
        self.pid = operator.process.pid if operator.process else None

    def apply(self, namespace: str, *docs: dict[str, Any]) -> None:
        for doc in docs:
            create_object(self.kube, doc, namespace)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return get_object(self.kube, kind, namespace or self.bad, name)

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return list_objects(self.kube, kind, namespace or self.bad)

    def describe(self) -> str:
        return (
            f"--- {self.bad} ---\n{summary(self.kube, self.bad)}\n"
            f"--- {self.healthy} ---\n{summary(self.kube, self.healthy)}\n"
            f"--- operator log ---\n{self.operator.log_tail(60)}"
        )

    def wait_for_want(
        self, name: str, state: str, namespace: str | None = None, timeout: float = BUILD_TIMEOUT
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            found = self.get("Want", name, namespace)
            if found is None:
                return None
            current = want_state(found)
            if current == state:
                return found
            if current in TERMINAL:
                raise AssertionError(f"Want {name} ended {current}, not {state}\n{self.describe()}")
            return None

        return wait_until(
            check, timeout=timeout, what=f"Want {name} {state}", describe=self.describe
        )

    def runs_of(self, job_definition: str) -> list[dict[str, Any]]:
        return [r for r in self.list("JobRun") if r["spec"]["jobDefinition"] == job_definition]

    def partition(self, ref: str) -> dict[str, Any]:
        found = [p for p in self.list("Partition") if p["spec"]["ref"] == ref]
        assert found, f"no Partition for {ref}\n{self.describe()}"
        return found[0]

    def healthy_still_builds(self) -> None:
        """A new Want in the healthy namespace builds, served by the same process."""
        tag = uuid.uuid4().hex[:8]
        self.apply(self.healthy, want(f"ok-{tag}", [f"okb/run={tag}"]))
        self.wait_for_want(f"ok-{tag}", "Successful", self.healthy)
        assert self.operator.alive, self.describe()
        assert self.operator.process is not None and self.operator.process.pid == self.pid


def _create_namespace(kube: Kube, prefix: str) -> str:
    name = f"t-hostile-{prefix}-{uuid.uuid4().hex[:8]}"
    kube.create_namespace(name)  # and its default ServiceAccount, without which no pods
    return name


@pytest.fixture(scope="module")
def hostile(
    kube: Kube,
    control_plane: Cluster,
    crds: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Hostile]:
    bad = _create_namespace(kube, "bad")
    healthy = _create_namespace(kube, "ok")
    log_dir: Path = tmp_path_factory.mktemp("hostile")
    operator = OperatorProcess(
        kubeconfig=Path(control_plane.kubeconfig),
        namespaces=[bad, healthy],
        log_path=log_dir / "operator.log",
        metrics_port=free_port(),
        extra_args=["--lease-name", f"databuild-{bad}"[:63], "--lease-duration-seconds", "4"],
    ).start()
    h = Hostile(kube, bad, healthy, operator)
    h.apply(
        healthy,
        jobdef("oka", ["oka/run={run}"]),
        jobdef("okb", ["okb/run={run}"], ["oka/run={run}"]),
    )
    try:
        yield h
    finally:
        operator.stop()
        for name in (bad, healthy):
            kube.delete("Namespace", None, name)


def _failed(message: str) -> dict[str, dict[str, str]]:
    """Pod template metadata: kwok fails the pod with exit code 3 and ``message``."""
    return {
        "labels": {"kwok.databuild.dev/outcome": "fail"},
        "annotations": {"kwok.databuild.dev/message": message, "kwok.databuild.dev/exit-code": "3"},
    }


def _rejected(h: Hostile, doc: dict[str, Any]) -> str:
    with pytest.raises(KubeError) as info:
        create_object(h.kube, doc, h.bad)
    assert info.value.status == 422, info.value
    return str(info.value)


def test_a_nested_termination_message_fails_only_its_run(hostile: Hostile) -> None:
    h = hostile
    # json.loads raised RecursionError on this and the operator crash-looped.
    nested = '{"missingPartitions":' + "[" * 3000 + "]" * 3000 + "}"
    h.apply(
        h.bad,
        jobdef("nest", ["nest/{x}"], **_failed(nested)),
        want("nest", ["nest/1"]),
    )
    h.wait_for_want("nest", "Failed")
    [run] = h.runs_of("nest")
    assert run["status"]["state"] == "Failed"
    assert "MalformedTerminationMessage" in run["status"]["message"], run["status"]
    assert "nests 3001 levels deep" in run["status"]["message"]
    h.healthy_still_builds()


def test_hostile_patterns_match_on_re2_or_mark_their_job_definition(hostile: Hostile) -> None:
    h = hostile
    h.apply(
        h.bad,
        jobdef("flag", ["flag/{x:(?i)abc}"]),  # re.error in Python's combined regex
        jobdef("redos", ["redos/{x:(a+)+b}"]),  # seconds per character on backtracking
        jobdef("look", ["look/{x:a(?=b)}"]),  # RE2 has no lookahead
        want("flag", ["flag/ABC"]),
        want("redos", ["redos/" + "a" * 40 + "b"]),
        want("redos-miss", ["redos/" + "a" * 40 + "c"]),
        want("look", ["look/ab"]),
    )
    h.wait_for_want("flag", "Successful")
    h.wait_for_want("redos", "Successful")

    def marked() -> dict[str, Any] | None:
        jd = h.get("JobDefinition", "look")
        ready = condition(jd or {})
        return ready if ready.get("reason") == "InvalidJobDefinition" else None

    ready = wait_until(
        marked, timeout=BUILD_TIMEOUT, what="look to be invalid", describe=h.describe
    )
    assert ready["status"] == "False" and "RE2" in ready["message"]

    def stalled(name: str) -> dict[str, Any] | None:
        found = h.get("Want", name) or {}
        ready = condition(found)
        return ready if ready.get("reason") in {"InvalidJobDefinition", "NoJobDefinition"} else None

    look = wait_until(lambda: stalled("look"), timeout=BUILD_TIMEOUT, what="look stalled")
    assert look["reason"] == "InvalidJobDefinition" and "'look'" in look["message"]
    miss = wait_until(lambda: stalled("redos-miss"), timeout=BUILD_TIMEOUT, what="miss stalled")
    assert miss["reason"] == "NoJobDefinition"
    h.healthy_still_builds()


def test_the_api_server_refuses_refs_and_patterns_outside_the_alphabet(hostile: Hostile) -> None:
    h = hostile
    for ref in ["shell/$(id)", "shell/a;b", "shell/a b", "shell/`x`", "shell/a|b", "shell/*"]:
        message = _rejected(h, want(f"shell-{uuid.uuid4().hex[:6]}", [ref]))
        assert "letters, digits and . _ - = : , + @ ~" in message, message
    message = _rejected(h, jobdef("shell", ["shell/$x/{x}"]))
    assert "must be a partition pattern" in message
    h.healthy_still_builds()


def test_numbers_and_times_at_their_limits(hostile: Hostile) -> None:
    h = hostile
    assert "ttlSeconds" in _rejected(h, want("ttl", ["lim/1"], ttlSeconds=10**15))
    assert "slaSeconds" in _rejected(h, want("sla", ["lim/1"], slaSeconds=10**15))
    message = _rejected(h, want("late", ["lim/1"], dataTimestamp="9999-12-31T23:59:59Z"))
    assert "spec.dataTimestamp must be from 1970" in message
    # At the limits the API server admits, the operator plans without overflow.
    h.apply(
        h.bad,
        jobdef("lim", ["lim/{x}"]),
        want("edge", ["lim/1"], ttlSeconds=316224000, dataTimestamp="2199-12-31T23:59:59Z"),
    )
    h.wait_for_want("edge", "Successful")
    h.healthy_still_builds()


def test_graphs_without_end_fail_their_want_with_the_budget(hostile: Hostile) -> None:
    h = hostile
    h.apply(
        h.bad,
        jobdef("chain", ["chain/{x}"], ["chain/{x}0"]),  # made 1,021 JobRuns
        jobdef("tree", ["tree/{x}"], ["tree/{x}0", "tree/{x}1"]),  # walked for ever
        want("chain", ["chain/1"]),
        want("tree", ["tree/1"]),
    )
    for name in ("chain", "tree"):
        failed = h.wait_for_want(name, "Failed")
        assert failed["status"]["reason"] == "NeedBudgetExceeded", failed["status"]
        assert "budget" in condition(failed)["message"]
        assert condition(failed, "Stalled")["status"] == "True"
    assert h.runs_of("chain") == [] and h.runs_of("tree") == []
    h.healthy_still_builds()


def test_a_deleted_run_never_lends_its_name(hostile: Hostile) -> None:
    h = hostile
    h.apply(h.bad, jobdef("names", ["names/{x}"], **_failed("first error")))
    h.apply(h.bad, want("names-1", ["names/1"]))
    h.wait_for_want("names-1", "Failed")
    # creationTimestamp has whole seconds: a Want created in the second its partition
    # failed counts as older than the failure and fails with it instead of rebuilding.
    time.sleep(1.5)
    h.apply(h.bad, want("names-2", ["names/1"]))
    h.wait_for_want("names-2", "Failed")
    first, second = sorted(h.runs_of("names"), key=lambda r: r["spec"]["createdAt"])
    delete_object(h.kube, "JobRun", h.bad, first["metadata"]["name"])
    # The job is fixed; the next build must be a new run, not the failed second one.
    request(
        h.kube,
        "PATCH",
        f"/apis/databuild.dev/v1alpha1/namespaces/{h.bad}/jobdefinitions/names",
        {"spec": {"template": {"metadata": {"labels": None, "annotations": None}}}},
        content_type="application/merge-patch+json",
    )
    time.sleep(1.5)
    h.apply(h.bad, want("names-3", ["names/1"]))
    h.wait_for_want("names-3", "Successful")
    names = {r["metadata"]["name"] for r in h.runs_of("names")}
    assert second["metadata"]["name"] in names and len(names) == 2
    h.healthy_still_builds()


def test_a_miss_on_a_ref_nothing_builds_fails_the_run(hostile: Hostile) -> None:
    h = hostile
    miss = '{"missingPartitions": ["nowhere/1"]}'
    h.apply(h.bad, jobdef("lost", ["lost/{x}"], **_failed(miss)), want("lost", ["lost/1"]))
    h.wait_for_want("lost", "Failed")
    [run] = h.runs_of("lost")
    assert run["status"]["reason"] == "UnbuildableDependency", run["status"]
    assert "nowhere/1" in run["status"]["message"]
    h.healthy_still_builds()


def test_a_taint_annotation_from_the_future_is_clamped_to_the_servers_time(
    hostile: Hostile,
) -> None:
    h = hostile
    h.apply(h.bad, jobdef("dated", ["dated/{x}"]), want("dated", ["dated/1"]))
    h.wait_for_want("dated", "Successful")
    name = h.partition("dated/1")["metadata"]["name"]
    request(
        h.kube,
        "PATCH",
        f"/apis/databuild.dev/v1alpha1/namespaces/{h.bad}/partitions/{name}",
        {
            "metadata": {
                "annotations": {
                    "databuild.dev/taint": "forged",
                    "databuild.dev/taint-requested-at": "2100-01-01T00:00:00Z",
                }
            }
        },
        content_type="application/merge-patch+json",
    )
    # Read as of when the API server saw it written: the data Live then is tainted now
    # (not in 2100), and its rebuild, Live after that, is never tainted again.
    wait_until(
        lambda: h.partition("dated/1")["status"]["state"] == "Tainted",
        timeout=BUILD_TIMEOUT,
        what="dated/1 to be Tainted",
        describe=h.describe,
    )
    h.apply(h.bad, want("dated-again", ["dated/1"]))
    h.wait_for_want("dated-again", "Successful")
    h.healthy_still_builds()  # some seconds of planning later
    assert h.partition("dated/1")["status"]["state"] == "Live"
    assert len(h.runs_of("dated")) == 2


def test_a_forged_source_cannot_fail_someone_elses_run(hostile: Hostile) -> None:
    h = hostile
    slow = {"annotations": {"kwok.databuild.dev/duration": "8s"}}
    h.apply(h.bad, jobdef("victim", ["victim/{x}"], **slow), want("victim", ["victim/1"]))

    def running() -> str | None:
        runs = h.runs_of("victim")
        state = runs[0].get("status", {}).get("state") if runs else None
        return runs[0]["metadata"]["name"] if state == "Running" else None

    run = wait_until(running, timeout=BUILD_TIMEOUT, what="the victim running", describe=h.describe)
    # Honoured, this Want would make victim/1 an input of its own run: DependencyCycle.
    h.apply(h.bad, want("forged", ["victim/1"], source={"jobRun": run}))
    h.wait_for_want("victim", "Successful")
    [done] = h.runs_of("victim")
    assert done["status"]["state"] == "Succeeded"
    h.healthy_still_builds()
