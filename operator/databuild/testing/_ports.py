"""Free loopback ports, chosen so that parallel control planes do not collide."""

from __future__ import annotations

import random
import socket
from pathlib import Path

_LOCAL_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Used when the ephemeral range cannot be read: Linux's default.
_DEFAULT_EPHEMERAL = (32768, 60999)
_LOWEST = 10000
_HIGHEST = 65535


def ephemeral_range(path: Path = _LOCAL_PORT_RANGE) -> tuple[int, int]:
    """The kernel's ephemeral port range (the ports outgoing connections get)."""
    try:
        low, high = path.read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return _DEFAULT_EPHEMERAL


def candidate_ranges(ephemeral: tuple[int, int]) -> list[range]:
    """Port ranges outside the ephemeral range.

    Asking the kernel for port 0 hands out an *ephemeral* port, which any outgoing
    connection (etcd's clients, the apiserver's watches) may take in the moment
    between our probe and the component's bind. Ports outside that range are only
    taken by someone binding them explicitly.
    """
    low, high = ephemeral
    ranges = [range(_LOWEST, max(_LOWEST, low)), range(max(_LOWEST, high + 1), _HIGHEST + 1)]
    ranges = [r for r in ranges if len(r) > 0]
    if not ranges:  # the whole space is ephemeral: nothing better than all of it
        ranges = [range(_LOWEST, _HIGHEST + 1)]
    return ranges


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether `port` can be bound on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _nth(ranges: list[range], index: int) -> int:
    for r in ranges:
        if index < len(r):
            return r[index]
        index -= len(r)
    raise IndexError(index)


def free_ports(count: int, host: str = "127.0.0.1", rng: random.Random | None = None) -> list[int]:
    """`count` distinct ports that are free on `host` now, chosen at random.

    Random choice (rather than "the next free one") makes two harnesses starting at
    the same moment unlikely to probe, and then pick, the same ports.
    """
    rng = rng or random.Random()
    ranges = candidate_ranges(ephemeral_range())
    total = sum(len(r) for r in ranges)
    chosen: list[int] = []
    for _ in range(max(1000, 50 * count)):
        port = _nth(ranges, rng.randrange(total))
        if port not in chosen and is_free(port, host):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError(f"could not find {count} free ports on {host}")
