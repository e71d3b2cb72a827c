"""Queues under the real Kueue: its webhooks and controllers admit the operator's Jobs.

Kueue's manager (built by ``make kueue``) runs against the local control plane with
its admission webhooks registered, managing batch Jobs that name a LocalQueue. A
ClusterQueue has cpu quota for exactly one build at a time; the test looks at what
Kueue records (its Workloads' admission), what the job controller records (the Jobs)
and what the operator records (JobRuns and Wants).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from e2e_support import Scenario, jobdef
from tests.manifests import want

from databuild.testing._kueue import Kueue, KueueBinaries, find_kueue_binaries
from databuild.testing.demo import KubeError, delete_object, request, wait_until
from databuild.testing.outcomes import simulated

if TYPE_CHECKING:
    from databuild.testing import Cluster
    from databuild.testing.kube import Kube

QUEUE = "kueue.x-k8s.io/queue-name"
KUEUE_API = "/apis/kueue.x-k8s.io/v1beta2"
BUILD_SECONDS = 3  # long enough that a second admission while one runs would show


@pytest.fixture(scope="module")
def kueue_binaries() -> KueueBinaries:
    """Kueue's build (`make kueue`): missing, it is an error of every test here (with
    where it looked and what to run), never a skip."""
    return find_kueue_binaries()


@pytest.fixture(scope="module")
def kueue(
    kueue_binaries: KueueBinaries,
    control_plane: Cluster,
    crds: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Kueue]:
    """Kueue's manager, running against the session's control plane."""
    manager = Kueue(
        Path(control_plane.kubeconfig),
        kueue_binaries,
        run_dir=tmp_path_factory.mktemp("kueue"),
    )
    manager.start()
    t = manager.timings
    print(
        f"kueue: CRDs {t['crds']:.1f}s, ready {t['ready']:.1f}s, webhooks registered "
        f"{t['webhooks']:.1f}s after start; log: {manager.logs_dir}"
    )
    try:
        yield manager
    finally:
        manager.stop()


def _queues(kube: Kube, namespace: str, cpu: str) -> Iterator[None]:
    """A ResourceFlavor and a ClusterQueue (both named after the namespace, since they
    are cluster-scoped) with ``cpu`` of quota, and a LocalQueue ``builds`` onto them."""
    name = namespace
    request(
        kube,
        "POST",
        f"{KUEUE_API}/resourceflavors",
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ResourceFlavor",
            "metadata": {"name": name},
        },
    )
    request(
        kube,
        "POST",
        f"{KUEUE_API}/clusterqueues",
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": name},
            "spec": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu"],
                        "flavors": [
                            {"name": name, "resources": [{"name": "cpu", "nominalQuota": cpu}]}
                        ],
                    }
                ],
            },
        },
    )
    request(
        kube,
        "POST",
        f"{KUEUE_API}/namespaces/{namespace}/localqueues",
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": {"name": "builds", "namespace": namespace},
            "spec": {"clusterQueue": name},
        },
    )
    try:
        yield
    finally:
        for path in (f"{KUEUE_API}/clusterqueues/{name}", f"{KUEUE_API}/resourceflavors/{name}"):
            try:
                request(kube, "DELETE", path)
            except KubeError as error:
                if error.status != 404:
                    raise


@pytest.fixture
def one_build_at_a_time(kube: Kube, namespace: str, kueue: Kueue) -> Iterator[None]:
    """Queues with cpu quota for one build (each requests one cpu)."""
    yield from _queues(kube, namespace, "1")


def _queued_jobdef(name: str, outputs: list[str], queue: str | None, **spec: Any) -> dict[str, Any]:
    """A JobDefinition whose pods request one cpu and run BUILD_SECONDS; its Jobs name
    ``queue`` (a LocalQueue) when given."""
    doc = jobdef(name, outputs, **simulated(duration=f"{BUILD_SECONDS}s"), **spec)
    container = doc["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = {"requests": {"cpu": "1"}}
    if queue is not None:
        doc["spec"]["jobMetadata"] = {"labels": {QUEUE: queue}}
    return doc


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _condition_time(obj: dict[str, Any], type_: str) -> datetime | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "True":
            return _time(c["lastTransitionTime"])
    return None


def _finished(job: dict[str, Any]) -> bool:
    # The job controller's interim conditions count too: Kueue may release the quota on them.
    done = {"Complete", "Failed", "SuccessCriteriaMet", "FailureTarget"}
    return any(
        c.get("type") in done and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


@pytest.mark.usefixtures("one_build_at_a_time")
def test_kueue_admits_one_build_at_a_time_while_a_neighbour_builds(
    scenario: Scenario, kueue: Kueue
) -> None:
    sc = scenario
    refs = [f"queued/date=2025-01-0{d}" for d in (1, 2, 3)]
    sc.apply(
        # A limit of two runs, above the queue's one: the run Kueue admits and the one
        # it holds would reach the limit if held runs counted, and the third Job would
        # wait for the first to finish.
        _queued_jobdef("queued", ["queued/date={date}"], "builds", maxConcurrentRuns=2),
        _queued_jobdef("direct", ["direct/date={date}"], None),
        want("three", refs),
        want("free", ["direct/date=2025-01-01"]),
    )
    sc.start_operator()

    seen_admission: dict[str, set[str]] = {}
    most_running = 0  # queued Jobs let run at once

    def done() -> bool:
        nonlocal most_running
        kueue.check()
        jobs = [
            j
            for j in sc.list("Job")
            if QUEUE in (j["metadata"].get("labels") or {}) and not _finished(j)
        ]
        most_running = max(most_running, sum(1 for j in jobs if not j["spec"].get("suspend")))
        for run in sc.runs_of("queued"):
            admission = (run.get("status") or {}).get("admission")
            if admission:
                seen_admission.setdefault(run["metadata"]["name"], set()).add(admission)
        wants = [sc.get("Want", n) for n in ("three", "free")]
        states = [(w.get("status") or {}).get("state") if w else None for w in wants]
        if "Failed" in states:
            raise AssertionError(f"a Want failed\n{sc.describe()}\n{kueue.log_tail(60)}")
        return states == ["Successful", "Successful"]

    wait_until(
        done,
        timeout=30 + 6 * BUILD_SECONDS * len(refs),
        what="both Wants Successful",
        describe=lambda: f"{sc.describe()}\n{kueue.log_tail(60)}",
    )

    runs = sc.runs_of("queued")
    assert len(runs) == len(refs)
    jobs = {j["metadata"]["name"]: j for j in sc.list("Job")}
    for run in runs:
        status = run["status"]
        assert status["state"] == "Succeeded"
        # Kueue resumed the Job the operator created: no second attempt, no fight.
        assert status["attempt"] == 1, status
        # A run Kueue admitted the moment its Job appeared may never have been seen
        # held; one that was seen held says it was admitted.
        if "WaitingForAdmission" in seen_admission.get(run["metadata"]["name"], set()):
            assert status["admission"] == "Admitted", status
        else:
            assert status.get("admission") in ("Admitted", None), status
        job = jobs[status["jobName"]]
        assert job["metadata"]["labels"][QUEUE] == "builds"
        assert job["spec"]["suspend"] is False

    # Kueue's own record: a Workload per queued Job, admitted one after the other.
    workloads = request(sc.kube, "GET", f"{KUEUE_API}/namespaces/{sc.namespace}/workloads")["items"]
    owners = {
        ref["name"]
        for w in workloads
        for ref in w["metadata"].get("ownerReferences") or []
        if ref["kind"] == "Job"
    }
    assert owners == {r["status"]["jobName"] for r in runs}, owners
    spans = []
    for w in workloads:
        admitted, finished = _condition_time(w, "Admitted"), _condition_time(w, "Finished")
        assert admitted is not None and finished is not None, w["status"]
        assert w["status"]["admission"]["clusterQueue"] == sc.namespace
        spans.append((admitted, finished))
    spans.sort()
    for (_, previous_finished), (admitted, _) in itertools.pairwise(spans):
        assert admitted >= previous_finished, spans

    # The JobDefinition's limit of 2 did not hold the third Job back until the first
    # finished: the run Kueue held does not count against it.
    first, _, third = sorted(
        (jobs[r["status"]["jobName"]] for r in runs),
        key=lambda j: _time(j["metadata"]["creationTimestamp"]),
    )
    assert _time(third["metadata"]["creationTimestamp"]) < _time(
        first["status"]["completionTime"]
    ), (first["status"], third["metadata"])
    # What the test saw while it ran: never two queued Jobs running at once.
    assert most_running == 1, most_running
    waited = [name for name, seen in seen_admission.items() if "WaitingForAdmission" in seen]
    assert len(waited) >= 2, seen_admission

    # The neighbour's Job, without a queue, ran while the queue was still busy.
    free_run = sc.runs_of("direct")[0]
    free_job = jobs[free_run["status"]["jobName"]]
    assert "suspend" not in free_job["spec"] or free_job["spec"]["suspend"] is False
    assert "admission" not in free_run["status"]
    assert _time(free_job["status"]["completionTime"]) <= spans[-1][0], (free_job["status"], spans)


@pytest.mark.usefixtures("one_build_at_a_time")
def test_a_job_for_a_missing_queue_is_held_and_cancelled_cleanly(
    scenario: Scenario, kueue: Kueue
) -> None:
    sc = scenario
    sc.apply(
        _queued_jobdef("lost", ["lost/date={date}"], "no-such-queue"),
        _queued_jobdef("queued", ["queued/date={date}"], "builds"),
        want("lost", ["lost/date=2025-01-01"]),
        want("fine", ["queued/date=2025-01-01"]),
    )
    sc.start_operator()
    # The neighbour on a real queue builds; the run for the missing queue is held.
    sc.wait_for_want("fine", "Successful", timeout=60)

    def held() -> dict[str, Any] | None:
        kueue.check()
        runs = sc.runs_of("lost")
        status = runs[0].get("status", {}) if runs else {}
        return runs[0] if status.get("admission") == "WaitingForAdmission" else None

    run = wait_until(held, timeout=30, what="the lost run held", describe=sc.describe)
    job_name = run["status"]["jobName"]
    workloads_path = f"{KUEUE_API}/namespaces/{sc.namespace}/workloads"

    def workload_of_job() -> dict[str, Any] | None:
        for w in request(sc.kube, "GET", workloads_path)["items"]:
            if any(r["name"] == job_name for r in w["metadata"].get("ownerReferences") or []):
                return w  # type: ignore[no-any-return]
        return None

    workload = wait_until(workload_of_job, timeout=30, what="Kueue's Workload for the Job")
    assert _condition_time(workload, "Admitted") is None, workload.get("status")
    lost = sc.get("Want", "lost")
    assert lost is not None and lost["status"]["state"] == "Building", lost
    assert sc.get("Job", job_name)["spec"]["suspend"] is True  # type: ignore[index]

    # Nobody needs it any more: the held Job (with the operator's outcome finalizer,
    # released once it is deleting) and Kueue's Workload go away.
    delete_object(sc.kube, "Want", sc.namespace, "lost")

    def cleaned_up() -> bool:
        cancelled = sc.runs_of("lost")[0]["status"]["state"] == "Cancelled"
        return cancelled and sc.get("Job", job_name) is None and workload_of_job() is None

    def left_over() -> str:
        return (
            f"{sc.describe()}\nJob: {sc.get('Job', job_name)}\n"
            f"Workload: {workload_of_job()}\n{kueue.log_tail(40)}"
        )

    wait_until(
        cleaned_up,
        timeout=60,
        what="the run Cancelled, its Job and Workload gone",
        describe=left_over,
    )
