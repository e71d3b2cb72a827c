"""Needs: the need graph walked from the live Wants within its budgets, cycles, and failures
propagated to what waits for them."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from databuild.domain.planning.messages import clip
from databuild.domain.planning.resolution import Blocker
from databuild.domain.planning.state import TERMINAL_WANT, PlanningState
from databuild.domain.states import JobRunQueued, JobRunWaitingForUpstream, PartitionFailed


def over_budget(budget: str, path: list[str], nxt: str) -> Blocker:
    """The blocker of a Want whose need walk went over ``budget``."""
    return Blocker(
        "NeedBudgetExceeded",
        f"resolving the inputs of {path[0]!r} went over the budget of {budget} "
        f"({len(path)} levels deep at {clip(nxt)!r}); check the JobDefinitions' inputs for a "
        "pattern that feeds itself, or split the Want",
    )


def roots(st: PlanningState) -> list[str]:
    """The live user Wants, by name: where the need walk starts."""
    return [
        n
        for n in sorted(st.wants)
        if st.wants[n].source_job_run is None and not isinstance(st.wants[n].state, TERMINAL_WANT)
    ]


def edges(st: PlanningState, ref: str) -> tuple[str, ...]:
    """Refs ``ref`` needs before it can be built (empty when Live or blocked)."""
    run_name = st.active.get(ref)
    if run_name is not None:
        run = st.runs[run_name]
        extra: list[str] = []
        reported = run.state.ever_missing
        for want_name in st.wants_by_source.get(run_name, ()):
            want = st.wants[want_name]
            if not isinstance(want.state, TERMINAL_WANT):
                # Only what the run reported: a Want claiming this run as its
                # source cannot add needs to it (and so cannot fail it).
                extra.extend(r for r in want.partitions if r in reported)
        waits = st.waits_of(run)
        return tuple(dict.fromkeys((*waits, *extra))) if extra else waits
    if st.is_live(ref):
        return ()
    resolved = st.resolver.resolve(ref)
    if isinstance(resolved, Blocker):
        return ()
    return resolved.inputs


def find_needs(st: PlanningState) -> bool:
    """Walk the need graph from the live Wants; fail cycles. True if anything failed.

    Each Want's walk is held to the budgets in :class:`Settings` (refs it reaches
    first, depth, and the namespace's total): a Want over one is failed
    (``NeedBudgetExceeded``) and its partial walk undone, so it costs at most its
    budget and nothing of it is built.
    """
    st.needed_refs = []
    st.needed_runs = set()
    st.blockers = {}
    color: dict[str, int] = {}  # 1: on the stack, 2: done
    cycles: list[list[str]] = []
    settings = st.settings
    per_want, max_depth = settings.need_refs_per_want, settings.need_depth_per_want
    room = settings.need_refs_per_namespace
    over: list[tuple[str, Blocker]] = []
    for want_name in roots(st):
        refs_before, cycles_before = len(st.needed_refs), len(cycles)
        colored: list[str] = []
        limit = min(per_want, room)
        exceeded: Blocker | None = None
        for root in st.wants[want_name].partitions:
            if root in color:
                continue
            stack: list[tuple[str, Iterator[str]]] = [(root, iter(edges(st, root)))]
            path: list[str] = [root]
            color[root] = 1
            colored.append(root)
            while stack:
                ref, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    stack.pop()
                    path.pop()
                    color[ref] = 2
                    visit_done(st, ref)
                    continue
                seen = color.get(nxt)
                if seen is None:
                    if len(colored) >= limit or len(path) >= max_depth:
                        if len(path) >= max_depth:
                            budget = f"{max_depth} levels of inputs per Want"
                        elif limit == per_want:
                            budget = f"{per_want} partitions per Want"
                        else:
                            total = settings.need_refs_per_namespace
                            budget = f"{total} partitions per namespace (all Wants)"
                        exceeded = over_budget(budget, path, nxt)
                        break
                    color[nxt] = 1
                    colored.append(nxt)
                    path.append(nxt)
                    stack.append((nxt, iter(edges(st, nxt))))
                elif seen == 1:
                    cycles.append([*path[path.index(nxt) :], nxt])
            if exceeded is not None:
                break
        if exceeded is None:
            room -= len(colored)
            continue
        # Undo the walk: nothing of an over-budget Want is needed (or built).
        for ref in colored:
            del color[ref]
        st.resolver.forget(colored)
        del st.needed_refs[refs_before:]
        del cycles[cycles_before:]
        over.append((want_name, exceeded))
    if over:
        st.needed_runs = {st.active[r] for r in st.needed_refs if r in st.active}
        for want_name, blocker in over:
            state = st.wants[want_name].state
            if isinstance(state, TERMINAL_WANT):  # pragma: no cover - roots are live
                continue
            st.set_want(
                want_name,
                *state.fail(want_name, at=st.now, reason=blocker.reason, message=blocker.message),
            )
    if not cycles:
        return False
    return fail_cycles(st, cycles)


def visit_done(st: PlanningState, ref: str) -> None:
    """Record ref as needed once its inputs are walked; note why it cannot be built."""
    st.needed_refs.append(ref)
    run_name = st.active.get(ref)
    if run_name is not None:
        st.needed_runs.add(run_name)
        return
    if st.is_live(ref):
        return
    resolved = st.resolver.resolve(ref)
    if isinstance(resolved, Blocker):
        st.blockers[ref] = resolved
        return
    if st.doomed:
        for dep in resolved.inputs:
            doom = st.doomed.get(dep)
            if doom is not None:
                st.doomed[ref] = doom
                return


def fail_cycles(st: PlanningState, cycles: list[list[str]]) -> bool:
    """Fail the runs waiting in cycles and the Wants reaching them; whether any failed."""
    changed = False
    for cycle in cycles:
        text = " -> ".join(cycle)
        blocker = Blocker("DependencyCycle", f"dependency cycle: {text}")
        for ref in cycle[:-1]:
            st.doomed.setdefault(ref, blocker)
            run_name = st.active.get(ref)
            if run_name is not None:
                st.fail_waiting(run_name, blocker.message)
                changed = True
    # Wants whose closure reaches a doomed ref fail; recompute needs without them.
    reach = doom_reach(st)
    for want_name in roots(st):
        want = st.wants[want_name]
        doom = next((reach[r] for r in want.partitions if r in reach), None)
        if doom is not None and not isinstance(want.state, TERMINAL_WANT):
            st.set_want(
                want_name,
                *want.state.fail(want_name, at=st.now, reason=doom.reason, message=doom.message),
            )
            changed = True
    return changed


def doom_reach(st: PlanningState) -> dict[str, Blocker]:
    """Every needed ref from which a doomed ref (a cycle) is reachable, with its cycle.

    Linear: one walk of the need graph, then a walk back from the doomed refs.
    """
    graph: dict[str, tuple[str, ...]] = {}
    work: list[str] = [r for w in roots(st) for r in st.wants[w].partitions]
    while work:
        ref = work.pop()
        if ref not in graph:
            graph[ref] = edges(st, ref)
            work.extend(graph[ref])
    dependents: dict[str, list[str]] = {}
    for ref, deps in graph.items():
        for dep in deps:
            dependents.setdefault(dep, []).append(ref)
    start = sorted(r for r in graph if r in st.doomed)
    reach = {r: st.doomed[r] for r in start}
    queue = deque(start)
    while queue:
        ref = queue.popleft()
        for parent in sorted(dependents.get(ref, ())):
            if parent not in reach:
                reach[parent] = reach[ref]
                queue.append(parent)
    return reach


def failed_inputs(st: PlanningState) -> list[str]:
    """The refs some run waits on whose partition is Failed."""
    return [ref for ref in sorted(st.needers) if isinstance(st.parts.get(ref), PartitionFailed)]


def cascade_failures(st: PlanningState, refs: list[str]) -> None:
    """Fail the runs waiting on Failed partitions that failed after the run was decided.

    A failure older than the run is rebuilt instead (the run is a newer need).
    """
    work = list(refs)
    while work:
        ref = work.pop()
        part = st.parts.get(ref)
        if not isinstance(part, PartitionFailed) or part.failed_at is None:
            continue
        for run_name in st.needers.get(ref, ()):
            run = st.runs[run_name]
            if not isinstance(run.state, JobRunQueued | JobRunWaitingForUpstream):
                continue
            if part.failed_at <= run.created_at:
                continue
            st.fail_waiting(run_name, f"input {ref} failed: {part.message}"[:1024])
            work.extend(run.partitions)


__all__ = [
    "cascade_failures",
    "doom_reach",
    "edges",
    "fail_cycles",
    "failed_inputs",
    "find_needs",
    "over_budget",
    "roots",
    "visit_done",
]
