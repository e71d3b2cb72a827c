"""Schedules: which ticks of a cron calendar are due, and the Wants they turn into.

Pure: a Schedule's spec, what its status says it has handled, the Wants it owns and
the current time go in; a :class:`ScheduleDecision` (Wants to create, terminal Wants
to delete, the new status) comes out. The operator carries the decision out.

Cron expressions are evaluated by ``cronsim``, which follows Debian's cron on daylight
saving time changes: a job at a specific time that a spring-forward change skips runs
right after the jump, and one in an hour that a fall-back change repeats runs once;
jobs that run every hour or more often run on real time (so an hourly schedule has
two ticks in a repeated hour). Want names therefore carry the tick in UTC, which never
repeats; partition refs carry the *data time* in the Schedule's own time zone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from databuild.domain.refs import InvalidPartitionRef, PartitionRef

#: The pinned ``@`` shorthands, spelled as the five-field expressions they stand for.
MACROS: Mapping[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
}
DEFAULT_HISTORY_LIMIT = 20
#: Wants created per Schedule in one pass; a long catch-up continues in the next pass,
#: so one Schedule with years of minutely ticks never holds up the others.
MAX_CREATES_PER_PASS = 50
#: ``<schedule>-YYYYMMDDHHMM`` must still be a valid object name (253 characters).
MAX_SCHEDULE_NAME_LENGTH = 253 - len("-YYYYMMDDHHMM")
TERMINAL_WANT_STATES = frozenset({"Successful", "Failed", "Expired"})

_TICK_FORMAT = "%Y%m%d%H%M"
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_FIXED_PLACEHOLDERS: Mapping[str, str] = {
    "date": "%Y-%m-%d",
    "hour": "%H",
    "minute": "%M",
    "month": "%Y-%m",
    "week": "%G-W%V",
    "datetime": "%Y-%m-%dT%H:%M",
}


class ScheduleError(ValueError):
    """A Schedule's spec cannot be used; the message says which field and why."""


@dataclass(frozen=True)
class Calendar:
    """A validated cron expression in a time zone."""

    expression: str
    zone: ZoneInfo

    @classmethod
    def parse(cls, expression: str, time_zone: str = "UTC") -> Calendar:
        """Validate ``expression`` (five fields or a pinned ``@`` shorthand) and the zone."""
        try:
            zone = ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(
                f"spec.timeZone {time_zone!r} is not an IANA time zone name "
                "(e.g. UTC, Europe/Berlin, America/New_York)"
            ) from None
        text = MACROS.get(expression.strip(), expression.strip())
        if text.startswith("@"):
            raise ScheduleError(
                f"spec.schedule {expression!r}: the shorthands are {', '.join(MACROS)}"
            )
        if len(text.split()) != 5:
            raise ScheduleError(
                f"spec.schedule {expression!r} must have five fields "
                "(minute hour day-of-month month day-of-week), e.g. '0 2 * * *'"
            )
        try:
            CronSim(text, datetime(2000, 1, 1, tzinfo=zone))
        except CronSimError as error:
            raise ScheduleError(f"spec.schedule {expression!r}: {error}") from None
        return cls(text, zone)

    def ticks_after(self, moment: datetime) -> Iterator[datetime]:
        """Ticks strictly after ``moment``, in UTC, in order (endless)."""
        for tick in CronSim(self.expression, moment.astimezone(self.zone)):
            yield tick.astimezone(UTC)

    def last_tick_at_or_before(self, moment: datetime) -> datetime | None:
        """The newest tick at or before ``moment``, in UTC (None if there is none)."""
        start = moment.astimezone(self.zone) + timedelta(seconds=1)
        for tick in CronSim(self.expression, start, reverse=True):
            return tick.astimezone(UTC)
        return None


def want_name(schedule: str, tick: datetime) -> str:
    """The pinned, deterministic name of a tick's Want: ``<schedule>-<YYYYMMDDHHMM>`` (UTC)."""
    return f"{schedule}-{tick.astimezone(UTC).strftime(_TICK_FORMAT)}"


def tick_of(schedule: str, want: str) -> datetime | None:
    """The tick a Want of ``schedule`` was created for, read back from its name."""
    prefix = f"{schedule}-"
    stamp = want[len(prefix) :] if want.startswith(prefix) else ""
    if len(stamp) != 12 or not stamp.isdigit():
        return None
    try:
        return datetime.strptime(stamp, _TICK_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def data_time(tick: datetime, offset_seconds: int, zone: ZoneInfo) -> datetime:
    """The time a tick's data is about: the tick minus the offset, in the Schedule's zone."""
    return (tick.astimezone(UTC) - timedelta(seconds=offset_seconds)).astimezone(zone)


def render_partitions(templates: Sequence[str], moment: datetime) -> tuple[PartitionRef, ...]:
    """Fill ``{date}``, ``{hour}``, ... and ``{time:<strftime>}`` from ``moment``.

    Raises :class:`ScheduleError` for an unknown placeholder or a result that is not a
    valid partition ref (saying which template and why).
    """
    refs: list[PartitionRef] = []
    for index, template in enumerate(templates):

        def fill(match: re.Match[str], _template: str = template, _index: int = index) -> str:
            name = match.group(1)
            if name in _FIXED_PLACEHOLDERS:
                return moment.strftime(_FIXED_PLACEHOLDERS[name])
            if name.startswith("time:") and len(name) > len("time:"):
                return moment.strftime(name[len("time:") :])
            known = ", ".join(f"{{{p}}}" for p in _FIXED_PLACEHOLDERS)
            raise ScheduleError(
                f"spec.partitions[{_index}] {_template!r}: unknown placeholder {{{name}}} "
                f"(use {known} or {{time:<strftime>}})"
            )

        text = _PLACEHOLDER.sub(fill, template)
        try:
            ref = PartitionRef(text)
        except InvalidPartitionRef as error:
            raise ScheduleError(f"spec.partitions[{index}] {template!r}: {error}") from None
        if ref not in refs:
            refs.append(ref)
    return tuple(refs)


@dataclass(frozen=True)
class ScheduleSpec:
    """What the domain needs of a Schedule (read from its custom resource)."""

    name: str
    expression: str
    partitions: tuple[str, ...]
    created_at: datetime
    time_zone: str = "UTC"
    data_offset_seconds: int = 0
    start_time: datetime | None = None
    end_time: datetime | None = None
    suspend: bool = False
    history_limit: int = DEFAULT_HISTORY_LIMIT


READY_REASONS = ("UpToDate", "CatchingUp", "Suspended", "Ended", "InvalidSpec", "WantRejected")
"""Every reason a Schedule's ``Ready`` condition can give (``WantRejected``: the API server
refused a Want it rendered)."""


@dataclass(frozen=True)
class ScheduleProgress:
    """What a Schedule's status says it has done."""

    handled_through: datetime | None = None
    """Every tick up to this time was handled (its Want created, or skipped while suspended)."""
    last_tick: datetime | None = None
    """The newest tick a Want was created for."""


@dataclass(frozen=True)
class OwnedWant:
    """A Want carrying the Schedule's label."""

    name: str
    state: str | None


@dataclass(frozen=True)
class DueWant:
    """A Want to create for one tick."""

    name: str
    tick: datetime
    data_time: datetime
    partitions: tuple[PartitionRef, ...]


@dataclass(frozen=True)
class ScheduleDecision:
    """What to do for one Schedule now, and the status that results."""

    create: tuple[DueWant, ...] = ()
    delete: tuple[str, ...] = ()
    progress: ScheduleProgress = field(default_factory=ScheduleProgress)
    next_tick: datetime | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    ready: bool = False
    reason: str = "InvalidSpec"
    message: str = ""
    wake_at: datetime | None = None
    """When to look at the Schedule again (None: only when something changes)."""


def count_wants(wants: Sequence[OwnedWant]) -> dict[str, int]:
    """Counts by state; a Want without a state yet is Pending, UpstreamBuilding is Building."""
    counts = dict.fromkeys(("pending", "building", "successful", "failed", "expired"), 0)
    for want in wants:
        state = want.state or "Pending"
        key = "building" if state == "UpstreamBuilding" else state.lower()
        if key in counts:
            counts[key] += 1
    counts["total"] = len(wants)
    return counts


def _history_to_delete(
    spec: ScheduleSpec, wants: Sequence[OwnedWant], handled_through: datetime | None
) -> tuple[str, ...]:
    terminal = []
    for want in wants:
        tick = tick_of(spec.name, want.name)
        # Only Wants for ticks already handled: deleting one never makes it due again.
        handled = tick is not None and handled_through is not None and tick <= handled_through
        if want.state in TERMINAL_WANT_STATES and handled and tick is not None:
            terminal.append((tick, want.name))
    terminal.sort(reverse=True)
    return tuple(name for _, name in terminal[spec.history_limit :])


def decide(
    spec: ScheduleSpec,
    progress: ScheduleProgress,
    wants: Sequence[OwnedWant],
    now: datetime,
    *,
    max_creates: int = MAX_CREATES_PER_PASS,
) -> ScheduleDecision:
    """Which Wants to create and delete for ``spec`` at ``now``, and its next status."""
    counts = count_wants(wants)
    try:
        if len(spec.name) > MAX_SCHEDULE_NAME_LENGTH:
            raise ScheduleError(
                f"metadata.name is {len(spec.name)} characters; a Schedule's name may have "
                f"at most {MAX_SCHEDULE_NAME_LENGTH} so that its Wants' names fit"
            )
        calendar = Calendar.parse(spec.expression, spec.time_zone)
        # Fail on a bad template now, not at the first tick.
        render_partitions(spec.partitions, now.astimezone(calendar.zone))
    except ScheduleError as error:
        return ScheduleDecision(progress=progress, counts=counts, message=str(error))

    # Ticks strictly after `anchor` are candidates: from startTime on (inclusive),
    # else the first tick after creation; never one already handled.
    if spec.start_time is not None:
        anchor = spec.start_time - timedelta(microseconds=1)
    else:
        anchor = spec.created_at
    if progress.handled_through is not None:
        anchor = max(anchor, progress.handled_through)

    handled, last_tick = progress.handled_through, progress.last_tick
    created: list[DueWant] = []
    existing = {w.name for w in wants}
    ended = False
    next_tick: datetime | None = None
    if spec.suspend:
        # Ticks that pass while suspended are skipped, so a resume starts at the next one.
        latest = calendar.last_tick_at_or_before(now)
        if latest is not None and latest > anchor:
            end = spec.end_time
            handled = latest if end is None or latest <= end else max(anchor, end)
            anchor = handled
    ticks = calendar.ticks_after(anchor)
    for tick in ticks:
        if spec.end_time is not None and tick > spec.end_time:
            ended = True
            break
        if tick > now or spec.suspend or len(created) >= max_creates:
            next_tick = tick
            break
        name = want_name(spec.name, tick)
        moment = data_time(tick, spec.data_offset_seconds, calendar.zone)
        due = DueWant(name, tick, moment, render_partitions(spec.partitions, moment))
        if name not in existing:
            created.append(due)
        handled, last_tick = tick, tick

    new_progress = ScheduleProgress(handled_through=handled, last_tick=last_tick)
    all_wants = [*wants, *(OwnedWant(d.name, None) for d in created)]
    delete = _history_to_delete(spec, all_wants, handled)
    kept = [w for w in all_wants if w.name not in set(delete)]
    catching_up = next_tick is not None and next_tick <= now and not spec.suspend
    if catching_up:
        reason, ready = "CatchingUp", False
        message = f"creating the Wants of past ticks; next: {next_tick:%Y-%m-%dT%H:%MZ}"
        wake_at: datetime | None = now
    elif spec.suspend:
        reason, ready, message, wake_at = "Suspended", True, "suspended: no Wants are created", None
        if next_tick is not None and not ended:
            wake_at = next_tick  # to skip that tick, so a resume starts after it
    elif ended or next_tick is None:
        reason, ready, message, wake_at = "Ended", True, "spec.endTime has passed", None
    else:
        reason, ready, wake_at = "UpToDate", True, next_tick
        message = f"every due tick has its Want; next tick {next_tick:%Y-%m-%dT%H:%MZ}"
    return ScheduleDecision(
        create=tuple(created),
        delete=delete,
        progress=new_progress,
        next_tick=None if ended else next_tick,
        counts=count_wants(kept),
        ready=ready,
        reason=reason,
        message=message,
        wake_at=wake_at,
    )
