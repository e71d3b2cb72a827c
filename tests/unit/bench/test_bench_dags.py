"""databuild.bench.dags: the benchmark graphs."""

from __future__ import annotations

import pytest

from databuild.adapters.resources import MAX_WANT_PARTITIONS, JobDefinitionSpec, WantSpec
from databuild.bench import dags
from databuild.bench.baseline import baseline_job, job_name
from databuild.domain.refs import InputTemplate, OutputPattern, match_ref


def test_wide_is_independent_and_all_wanted() -> None:
    dag = dags.wide(7)
    assert dag.size == 7
    assert dag.depth() == 1
    assert dag.wanted == tuple(n.ref for n in dag.nodes)
    assert all(not n.inputs for n in dag.nodes)


def test_deep_is_a_chain_wanting_only_its_end() -> None:
    dag = dags.deep(4)
    assert dag.size == 4
    assert dag.depth() == 4
    assert dag.wanted == ("deep003/run=1",)
    assert [n.inputs for n in dag.nodes] == [
        (),
        ("deep000/run=1",),
        ("deep001/run=1",),
        ("deep002/run=1",),
    ]


def test_fan_out_then_in_per_day() -> None:
    dag = dags.fan(3, 20)
    assert dag.size == 3 * (1 + 20 + 1)
    assert dag.depth() == 3
    assert len(dag.wanted) == 3
    agg = next(n for n in dag.nodes if n.ref == dag.wanted[0])
    assert len(agg.inputs) == 20
    assert all(ref.startswith("part/date=day000/") for ref in agg.inputs)


@pytest.mark.parametrize("dag", [dags.wide(3), dags.deep(3), dags.fan(2, 3), dags.latency(2)])
def test_the_operator_would_resolve_what_the_baseline_builds(dag: dags.Dag) -> None:
    # Each node's captures and inputs are what the JobDefinitions give for its ref.
    jobs = {j.name: j for j in dag.jobs}
    for node in dag.nodes:
        job = jobs[node.job]
        matches = [(p, c) for p, c in match_ref(node.ref, map(OutputPattern, job.outputs))]
        assert len(matches) == 1
        captures = matches[0][1]
        assert captures == dict(node.captures)
        rendered = tuple(InputTemplate(t, captures).render(captures) for t in job.inputs)
        assert rendered == node.inputs
        JobDefinitionSpec.model_validate(job.manifest()["spec"])


def test_wants_are_split_to_fit_the_crd_bound() -> None:
    dag = dags.wide(2500)
    wants = dag.want_manifests()
    assert [len(w["spec"]["partitions"]) for w in wants] == [MAX_WANT_PARTITIONS] * 2 + [500]
    assert len({w["metadata"]["name"] for w in wants}) == 3
    for want in wants:
        WantSpec.model_validate(want["spec"])


def test_inconsistent_graphs_are_rejected() -> None:
    job = dags.JobDef("j", ("a/x={x}",))
    with pytest.raises(dags.DagError, match="not an earlier node"):
        dags.Dag("bad", (job,), (dags.Node("a/x=1", "j", inputs=("a/x=2",)),), ())
    with pytest.raises(dags.DagError, match="twice"):
        dags.Dag("bad", (job,), (dags.Node("a/x=1", "j"), dags.Node("a/x=1", "j")), ())
    with pytest.raises(dags.DagError, match="unknown job"):
        dags.Dag("bad", (job,), (dags.Node("a/x=1", "k"),), ())
    with pytest.raises(ValueError, match="at least"):
        dags.wide(0)


def test_baseline_job_is_the_operators_rendering_without_owner_or_finalizer() -> None:
    node = dags.fan(1, 2).nodes[1]
    job = baseline_job(node, "ns")
    assert job["metadata"]["name"] == job_name(node)
    assert "ownerReferences" not in job["metadata"]
    # No operator removes the outcome finalizer of a baseline Job: it must not have one.
    assert "finalizers" not in job["metadata"]
    assert job["metadata"]["annotations"] == {"databuild.dev/attempt": "1"}
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DATABUILD_PARTITIONS"] == f'["{node.ref}"]'
    assert env["DATABUILD_INPUTS"] == '["raw/date=day000"]'
    assert job["spec"]["backoffLimit"] == 0
