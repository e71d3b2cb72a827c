"""Free ports: distinct, bindable, and outside the kernel's ephemeral range."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from databuild.testing._ports import candidate_ranges, ephemeral_range, free_ports, is_free


def test_ports_are_distinct_free_and_not_ephemeral() -> None:
    low, high = ephemeral_range()
    ports = free_ports(20)

    assert len(set(ports)) == 20
    for port in ports:
        assert not low <= port <= high
        assert is_free(port)


def test_a_bound_port_is_not_free() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert not is_free(sock.getsockname()[1])


def test_a_taken_port_is_never_chosen() -> None:
    # Seeded: the same sequence of candidates both times, so the taken one comes up.
    [first] = free_ports(1, rng=random.Random(7))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", first))
        assert first not in free_ports(5, rng=random.Random(7))


def test_ephemeral_range_is_read_from_the_kernel(tmp_path: Path) -> None:
    path = tmp_path / "ip_local_port_range"
    path.write_text("40000\t50000\n")
    assert ephemeral_range(path) == (40000, 50000)
    assert ephemeral_range(tmp_path / "missing") == (32768, 60999)


def test_candidates_avoid_the_ephemeral_range() -> None:
    ranges = candidate_ranges((32768, 60999))
    assert ranges == [range(10000, 32768), range(61000, 65536)]
    # Everything ephemeral: fall back to all of it rather than to nothing.
    assert candidate_ranges((1024, 65535)) == [range(10000, 65536)]
