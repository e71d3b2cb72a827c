"""The planner's phases, one module each, over one working state.

``state`` holds the working set (:class:`~.state.PlanningState`) and the transitions
every phase applies; ``passes`` drives the phases (the full pass and the local pass).
The public entry points stay :func:`databuild.domain.plan` and
:class:`databuild.domain.Planner`.
"""
