"""The operator layer: the watches, the world store, the orchestration loop and its wiring.

Run it with ``python -m databuild.operator``; :class:`Operator` assembles it in-process.
"""

from databuild.operator.eventlog import BuildEventLog, LoggedEvent
from databuild.operator.main import Operator, main
from databuild.operator.settings import Settings

__all__ = ["BuildEventLog", "LoggedEvent", "Operator", "Settings", "main"]
