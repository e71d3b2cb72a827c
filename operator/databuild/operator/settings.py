"""Operator settings: one place, from command-line flags over environment variables.

Every flag has an environment variable (``DATABUILD_<FLAG>``, e.g.
``DATABUILD_NAMESPACES=a,b``), so the Helm chart can configure the operator without
arguments and a developer can override anything on the command line.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ENV_PREFIX = "DATABUILD_"


@dataclass(frozen=True)
class Settings:
    """Everything the operator can be told at startup."""

    kubeconfig: Path | None = None
    """Kubeconfig to use; ``None``: in-cluster config, else the default kubeconfig."""
    namespaces: tuple[str, ...] = ()
    """Namespaces to serve; empty: every namespace (cluster-wide)."""
    job_ttl_seconds: int = 86400
    """How long finished batch Jobs are kept (``ttlSecondsAfterFinished``)."""
    job_run_retention_seconds: float = 7 * 86400.0
    """Finished JobRuns older than this are deleted, unless a Live partition was built by
    them (``0``: keep them all)."""
    max_concurrent_runs: int | None = None
    """Running JobRuns allowed per namespace at once; ``None``: no limit."""
    debounce_seconds: float = 0.05
    """How long the loop waits after a change for more changes before planning."""
    max_debounce_seconds: float = 0.5
    """The longest a burst of changes can delay planning."""
    leader_election: bool = True
    """Whether to hold a Lease so only one operator in the cluster orchestrates."""
    lease_name: str = "databuild-operator"
    lease_namespace: str = "default"
    lease_duration_seconds: float = 15.0
    """A leader that has not renewed for this long is presumed dead."""
    identity: str = field(default_factory=lambda: f"{os.uname().nodename}-{os.getpid()}")
    """This process in the Lease (unique per process)."""
    metrics_port: int | None = None
    """Serve Prometheus metrics on this port (``None``: not at all)."""
    bel_url: str | None = None
    """Build Event Log store (``sqlite:///path`` or ``postgresql://...``); ``None``: none."""
    bel_retention_days: float | None = None
    """Delete BEL events older than this many days (``None``: keep everything)."""
    health_port: int | None = None
    """Serve the liveness probe on this port at /healthz (``None``: not at all)."""
    history_port: int | None = None
    """Serve the read-only history API over the BEL on this port (needs ``bel_url``)."""
    watch_inactivity_timeout: float = 70.0
    """Seconds each watch request lasts; the next resumes where it ended."""
    write_concurrency: int = 16
    """Builds written at once within a plan (each build's writes stay in order)."""
    log_format: str = "text"
    """``text`` or ``json`` log lines."""
    log_level: str = "INFO"

    @property
    def clusterwide(self) -> bool:
        """Whether the operator serves every namespace."""
        return not self.namespaces


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(ENV_PREFIX + name)
    return value if value not in (None, "") else None


def parser() -> argparse.ArgumentParser:
    """The command-line interface of ``python -m databuild.operator``."""
    p = argparse.ArgumentParser(
        prog="python -m databuild.operator",
        description="The DataBuild operator: builds data partitions on demand.",
    )
    p.add_argument(
        "--kubeconfig",
        type=Path,
        help="kubeconfig (default: in-cluster, then $KUBECONFIG); env DATABUILD_KUBECONFIG",
    )
    p.add_argument(
        "--namespace",
        "-n",
        action="append",
        dest="namespaces",
        default=None,
        help="serve this namespace (repeatable; default: all namespaces); "
        "env DATABUILD_NAMESPACES=a,b",
    )
    p.add_argument(
        "--job-ttl-seconds", type=int, help="keep finished batch Jobs this long (default 86400)"
    )
    p.add_argument(
        "--job-run-retention-seconds",
        type=float,
        help="delete finished JobRuns (and the Wants they created) this long after they "
        "finished, unless they built a Live partition; 0 keeps them (default 604800, 7 days)",
    )
    p.add_argument(
        "--max-concurrent-runs", type=int, help="running JobRuns per namespace (default: unlimited)"
    )
    p.add_argument(
        "--no-leader-election",
        dest="leader_election",
        action="store_false",
        default=None,
        help="orchestrate without holding the Lease",
    )
    p.add_argument(
        "--lease-namespace",
        help="namespace of the leader Lease (default: the pod's namespace, else 'default')",
    )
    p.add_argument("--lease-name", help="name of the leader Lease")
    p.add_argument(
        "--lease-duration-seconds",
        type=float,
        help="a leader silent this long is replaced (default 15)",
    )
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.add_argument("--health-port", type=int, help="serve the liveness probe on this port")
    p.add_argument(
        "--history-port",
        type=int,
        help="serve the read-only history API (events, state at a time, lineage) on this port",
    )
    p.add_argument(
        "--bel-url",
        help="Build Event Log store: sqlite:///path/bel.db or postgresql://user@host/db",
    )
    p.add_argument("--bel-retention-days", type=float, help="delete BEL events older than this")
    p.add_argument(
        "--watch-inactivity-timeout",
        type=float,
        help="seconds each watch request lasts before it is resumed (default 70)",
    )
    p.add_argument(
        "--write-concurrency",
        type=int,
        help="builds written at once within a plan (default 16; 1: the planner's order)",
    )
    p.add_argument("--log-format", choices=["text", "json"], help="log line format")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    return p


def load(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``argv`` (flags win) and ``env`` (``DATABUILD_*``)."""
    env = os.environ if env is None else env
    args = parser().parse_args(argv)
    values: dict[str, object] = {}

    def pick(name: str, flag: object, convert: type = str) -> None:
        if flag is not None:
            values[name] = flag
            return
        raw = _env(env, name.upper())
        if raw is not None:
            try:
                values[name] = convert(raw)
            except ValueError:
                raise SystemExit(
                    f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {convert.__name__}"
                ) from None

    kubeconfig = args.kubeconfig or _env(env, "KUBECONFIG")
    if kubeconfig:
        values["kubeconfig"] = Path(kubeconfig)
    if args.namespaces:
        values["namespaces"] = tuple(dict.fromkeys(args.namespaces))
    elif _env(env, "NAMESPACES"):
        raw = _env(env, "NAMESPACES") or ""
        values["namespaces"] = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    pick("job_ttl_seconds", args.job_ttl_seconds, int)
    pick("job_run_retention_seconds", args.job_run_retention_seconds, float)
    pick("max_concurrent_runs", args.max_concurrent_runs, int)
    pick("lease_name", args.lease_name)
    pick("lease_duration_seconds", args.lease_duration_seconds, float)
    pick("metrics_port", args.metrics_port, int)
    pick("health_port", args.health_port, int)
    pick("history_port", args.history_port, int)
    pick("bel_url", args.bel_url)
    pick("bel_retention_days", args.bel_retention_days, float)
    pick("watch_inactivity_timeout", args.watch_inactivity_timeout, float)
    pick("write_concurrency", args.write_concurrency, int)
    pick("log_format", args.log_format)
    pick("log_level", args.log_level)
    lease_namespace = (
        args.lease_namespace or _env(env, "LEASE_NAMESPACE") or env.get("POD_NAMESPACE")
    )
    if lease_namespace:
        values["lease_namespace"] = lease_namespace
    if args.leader_election is not None:
        values["leader_election"] = args.leader_election
    elif _env(env, "LEADER_ELECTION") is not None:
        values["leader_election"] = (_env(env, "LEADER_ELECTION") or "").lower() not in (
            "0",
            "false",
            "no",
            "off",
        )
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.log_format not in ("text", "json"):
        raise SystemExit(f"log format must be text or json, got {settings.log_format!r}")
    if settings.write_concurrency < 1:
        raise SystemExit("--write-concurrency must be 1 or more")
    if settings.history_port is not None and settings.bel_url is None:
        raise SystemExit("--history-port serves the Build Event Log: it needs --bel-url too")
    if settings.job_ttl_seconds < 0:
        raise SystemExit("--job-ttl-seconds must be 0 or more")
    if settings.job_run_retention_seconds < 0:
        raise SystemExit("--job-run-retention-seconds must be 0 or more")
    if settings.max_concurrent_runs is not None and settings.max_concurrent_runs < 1:
        raise SystemExit("--max-concurrent-runs must be 1 or more")
    return settings
