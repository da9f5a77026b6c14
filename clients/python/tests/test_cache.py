"""get/set/delete/get_or_compute, as a disk cache's users expect them,
checked against what the mount shows from outside."""

from __future__ import annotations

import builtins
import io
import json
import os
import pickle
import subprocess
import sys
import threading
import time
from typing import List, Optional

import pytest

from helpers import expire_of, keys, read, tags_of
from tagcachefs import NEVER, Cache, JSONSerializer, PickleSerializer

EXCL = os.O_WRONLY | os.O_CREAT | os.O_EXCL


def hold_lock(mnt: str, key: str) -> int:
    """Takes `key`'s single-flight lock as another computing process would."""
    return os.open(os.path.join(mnt, "put", key), EXCL, 0o644)


def test_set_then_get_returns_the_bytes_other_programs_read_in_keys(cache: Cache, mnt: str, name: str) -> None:
    cache.set(name, b"<h1>home</h1>")
    assert cache.get(name) == b"<h1>home</h1>"
    assert read(keys(mnt, name)) == b"<h1>home</h1>"
    cache.set(name, "héllo")
    assert cache.get(name) == "héllo".encode()
    assert cache.get_or_compute(f"{name}-2", lambda: "str") == b"str", "as a hit would return it"


def test_get_of_a_missing_key_returns_the_default(cache: Cache, name: str) -> None:
    assert cache.get(name) is None
    assert cache.get(name, b"dflt") == b"dflt"


def test_set_gives_the_entry_its_tags_and_expiry(cache: Cache, mnt: str, name: str) -> None:
    cache.set(name, b"v", expire=600, tags=(f"{name}-a", f"{name}-b"))
    assert tags_of(mnt, name) == [f"{name}-a", f"{name}-b"]
    assert 590 <= expire_of(mnt, name) <= 600
    assert os.listdir(os.path.join(mnt, "tags", f"{name}-a")) == [name]
    assert os.stat(keys(mnt, name)).st_nlink == 3


def test_each_set_replaces_content_tags_and_expiry_together(cache: Cache, mnt: str, name: str) -> None:
    cache.set(name, b"one", expire=600, tags=(f"{name}-t",))
    cache.set(name, b"two")
    assert cache.get(name) == b"two"
    assert tags_of(mnt, name) == []
    assert expire_of(mnt, name) == 0
    assert os.listdir(os.path.join(mnt, "tags", f"{name}-t")) == []


@pytest.mark.parametrize("expire", [None, 0])
def test_expire_none_or_zero_never_expires(cache: Cache, mnt: str, name: str, expire: Optional[int]) -> None:
    cache.set(name, b"v", expire=expire)
    assert os.stat(keys(mnt, name)).st_mtime == NEVER


def test_an_empty_value_is_cached_and_visible_at_once(cache: Cache, mnt: str, name: str) -> None:
    cache.set(name, b"", expire=60, tags=(f"{name}-t",))
    assert cache.get(name) == b""
    assert tags_of(mnt, name) == [f"{name}-t"]
    assert 50 <= expire_of(mnt, name) <= 60
    calls: List[int] = []

    def empty() -> bytes:
        calls.append(1)
        return b""

    assert cache.lookup(f"{name}-2", empty).source == "computed"
    assert cache.lookup(f"{name}-2", empty).source == "hit"
    assert calls == [1]


def test_delete_invalidates_and_the_content_stays_under_stale(cache: Cache, mnt: str, name: str) -> None:
    cache.set(name, b"old")
    assert cache.delete(name) is True
    assert cache.get(name) is None
    assert cache.delete(name) is False
    assert read(os.path.join(mnt, "stale", name)) == b"old"


def test_the_mapping_protocol(cache: Cache, name: str) -> None:
    assert name not in cache
    cache[name] = b"v"
    assert name in cache
    assert cache[name] == b"v"
    del cache[name]
    with pytest.raises(KeyError):
        cache[name]
    with pytest.raises(KeyError):
        del cache[name]


@pytest.mark.parametrize(
    "serializer", [JSONSerializer(), PickleSerializer(), json, pickle], ids=["JSON", "pickle", "json-module", "pickle-module"]
)
def test_a_serializer_stores_objects(mnt: str, name: str, serializer: object) -> None:
    cache = Cache(mnt, serializer=serializer)  # type: ignore[arg-type]
    value = {"bio": {"name": "Huang junwen"}, "recent_blogs": ["tagcache"]}
    cache.set(name, value, tags=(f"{name}-t",))
    assert cache.get(name) == value
    assert cache.get_or_compute(f"{name}-2", lambda: [1, 2]) == [1, 2]
    assert cache.get(f"{name}-2") == [1, 2]


def test_json_is_readable_by_other_programs(mnt: str, name: str) -> None:
    Cache(mnt, serializer=JSONSerializer()).set(name, {"a": [1, 2]})
    assert read(keys(mnt, name)) == b'{"a":[1,2]}'


def test_without_a_serializer_only_bytes_and_str_are_values(cache: Cache, name: str) -> None:
    with pytest.raises(TypeError):
        cache.set(name, {"a": 1})
    with pytest.raises(TypeError):
        cache.get_or_compute(name, lambda: 42)
    assert cache.get(name) is None
    assert cache.get_or_compute(name, lambda: b"free") == b"free", "the lock was released"


@pytest.mark.parametrize(
    "key, error",
    [("", ValueError), (".", ValueError), ("..", ValueError), ("a/b", ValueError), ("a\0b", ValueError),
     ("x" * 126, ValueError), (42, TypeError)],
)
def test_keys_the_mount_would_refuse_are_refused_before_anything_is_written(
    cache: Cache, key: object, error: type
) -> None:
    with pytest.raises(error):
        cache.set(key, b"v")  # type: ignore[arg-type]
    with pytest.raises(error):
        cache.get_or_compute(key, lambda: b"v")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "tags, error",
    [(("a b",), ValueError), (("a,b",), ValueError), (("",), ValueError), (("t" * 126,), ValueError),
     ("bio", TypeError)],
)
def test_bad_tags_are_refused_before_anything_is_written(cache: Cache, name: str, tags: object, error: type) -> None:
    with pytest.raises(error):
        cache.set(name, b"v", tags=tags)  # type: ignore[arg-type]
    with pytest.raises(error):
        cache.get_or_compute(name, lambda: b"v", tags=tags)  # type: ignore[arg-type]
    assert cache.get(name) is None
    assert cache.get_or_compute(name, lambda: b"free") == b"free"


@pytest.mark.parametrize("expire, error", [(-1, ValueError), (2**32 + 1, ValueError), (1.5, TypeError), ("60", TypeError)])
def test_bad_expiries_are_refused_before_anything_is_written(
    cache: Cache, name: str, expire: object, error: type
) -> None:
    with pytest.raises(error):
        cache.set(name, b"v", expire=expire)  # type: ignore[arg-type]
    with pytest.raises(error):
        cache.get_or_compute(name, lambda: b"v", expire=expire)  # type: ignore[arg-type]
    assert cache.get(name) is None


def test_names_put_cannot_carry_are_written_through_keys(cache: Cache, mnt: str, name: str) -> None:
    # put/ takes a component starting with expire= or tags= as a parameter.
    for key in (f"expire=5-{name}", f"tags=x-{name}"):
        cache.set(key, b"odd", expire=60, tags=(f"{name}-t",))
        assert cache.get(key) == b"odd"
        assert tags_of(mnt, key) == [f"{name}-t"]
        assert 50 <= expire_of(mnt, key) <= 60
    # 30 tags of 12 bytes do not fit one path component.
    many = [f"x{i:02}-{name[-8:]}" for i in range(30)]
    cache.set(name, b"many", tags=many)
    assert tags_of(mnt, name) == sorted(many)
    assert cache.get_or_compute(f"{name}-2", lambda: b"v", tags=many) == b"v"
    assert tags_of(mnt, f"{name}-2") == sorted(many)


def test_get_or_compute_computes_once_then_hits(cache: Cache, mnt: str, name: str) -> None:
    calls: List[int] = []

    def compute() -> bytes:
        calls.append(1)
        return b"page"

    first = cache.lookup(name, compute, expire=600, tags=(f"{name}-t",))
    assert first == ("page".encode(), "computed")
    assert cache.lookup(name, compute) == (b"page", "hit")
    assert cache.get_or_compute(name, compute) == b"page"
    assert calls == [1]
    assert tags_of(mnt, name) == [f"{name}-t"]
    assert 590 <= expire_of(mnt, name) <= 600


def test_a_failing_compute_caches_nothing_and_frees_the_lock(cache: Cache, mnt: str, name: str) -> None:
    def broken() -> bytes:
        raise RuntimeError("backend down")

    with pytest.raises(RuntimeError, match="backend down"):
        cache.get_or_compute(name, broken, tags=(f"{name}-t",))
    assert cache.get(name) is None
    assert read(os.path.join(mnt, "stale", name)) is None, "nothing was committed"
    assert cache.lookup(name, lambda: b"ok") == (b"ok", "computed")


def test_stale_is_served_while_another_process_holds_the_lock(cache: Cache, mnt: str, name: str) -> None:
    cache.set(name, b"old")
    cache.invalidate_key(name)
    holder = hold_lock(mnt, name)
    try:
        assert cache.lookup(name, lambda: b"new", wait=5) == (b"old", "stale")
    finally:
        os.close(holder)  # gives up: nothing written, nothing committed
    # The lock goes with the holder's last release, which the kernel sends
    # just after close() returns: until then a lookup may still serve stale.
    deadline = time.monotonic() + 2
    got = cache.lookup(name, lambda: b"new")
    while got == (b"old", "stale") and time.monotonic() < deadline:
        time.sleep(0.01)
        got = cache.lookup(name, lambda: b"new")
    assert got == (b"new", "computed")


def test_a_waiting_process_gets_the_holders_value(cache: Cache, mnt: str, name: str) -> None:
    holder = hold_lock(mnt, name)

    def finish() -> None:
        time.sleep(0.3)
        os.write(holder, b"from the holder")
        os.close(holder)  # the commit

    t = threading.Thread(target=finish)
    start = time.monotonic()
    t.start()
    try:
        got = cache.lookup(name, lambda: b"not me", wait=10)
    finally:
        t.join()
    assert got == (b"from the holder", "waited")
    assert 0.25 <= time.monotonic() - start < 5


def test_past_the_wait_it_computes_without_the_lock(cache: Cache, mnt: str, name: str) -> None:
    holder = hold_lock(mnt, name)
    try:
        start = time.monotonic()
        got = cache.lookup(name, lambda: b"done anyway", wait=0.3, tags=(f"{name}-t",))
        waited = time.monotonic() - start
        assert got == (b"done anyway", "fallback")
        assert 0.3 <= waited < 5
        assert cache.get(name) == b"done anyway"
        assert tags_of(mnt, name) == [f"{name}-t"]
    finally:
        os.close(holder)
    assert cache.get(name) == b"done anyway", "the holder gave up: nothing committed"


def test_the_wait_backs_off_from_5_ms_doubling_to_250_ms(
    cache: Cache, mnt: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    delays: List[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)  # the module tagcachefs.cache calls
    holder = hold_lock(mnt, name)
    try:
        assert cache.lookup(name, lambda: b"v", wait=1.2).source == "fallback"
    finally:
        os.close(holder)
    assert [round(d, 3) for d in delays[:8]] == [0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.25, 0.25]
    assert max(delays) <= 0.25
    # The sleeps fill the wait, less the time spent between them (more on
    # a loaded machine), and never go past it.
    assert 0.9 <= sum(delays) <= 1.25


def test_threads_of_one_process_compute_once(cache: Cache, name: str) -> None:
    calls: List[int] = []
    results: List[object] = []

    def compute() -> bytes:
        calls.append(1)
        time.sleep(0.5)
        return b"once"

    go = threading.Barrier(5)

    def contender() -> None:
        go.wait()
        results.append(cache.lookup(name, compute))

    threads = [threading.Thread(target=contender) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1]
    sources = sorted(r[1] for r in results)  # type: ignore[index]
    # A thread the scheduler starts after the commit gets a plain hit.
    assert sources.count("computed") == 1 and set(sources) <= {"computed", "waited", "hit"}, sources
    assert all(r[0] == b"once" for r in results)  # type: ignore[index]


CONTENDER = """
import os, sys, time
from tagcachefs import Cache
mnt, key, record = sys.argv[1:]
sys.stdin.readline()
def compute():
    time.sleep(1)
    with open(record, "a") as f:
        f.write(f"{os.getpid()}\\n")
    return f"computed by {os.getpid()}"
got = Cache(mnt).lookup(key, compute)
print(got.source, got.value.decode())
"""


def test_processes_compute_once(mnt: str, name: str, tmp_path: object) -> None:
    record = os.path.join(str(tmp_path), "record")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONTENDER, mnt, name, record],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(5)
    ]
    for p in procs:  # released together
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    with open(record) as f:
        computed_by = f.read().split()
    assert len(computed_by) == 1
    lines = [out.strip().split(" ", 1) for out, _ in outs]
    assert sorted(how for how, _ in lines).count("computed") == 1
    assert all(value == f"computed by {computed_by[0]}" for _, value in lines), lines
    assert any(how == "waited" for how, _ in lines), lines


def test_reads_never_use_the_buffered_open(cache: Cache, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cache.set(name, b"v")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the buffered open() sends an ioctl per open")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(io, "open", refuse)
    assert cache.get(name) == b"v"
    assert cache.lookup(name, lambda: b"x") == (b"v", "hit")
    assert name in cache
    assert "commits" in cache.stats()


def test_the_fast_view_serves_hits_and_sees_every_change_at_once(mnt: str, fast: Optional[str], name: str) -> None:
    if fast is None:
        pytest.skip("TAGCACHEFS_FAST is not set")
    cache = Cache(mnt, read_mount=fast)
    assert cache.read_mount == os.path.abspath(fast)
    tag = f"{name}-t"
    cache.set(name, b"one", tags=(tag,))
    assert read(os.path.join(fast, "keys", name)) == b"one"
    for _ in range(3):
        assert cache.get(name) == b"one"
    cache.set(name, b"two", tags=(tag,))
    assert cache.get(name) == b"two"
    assert cache.invalidate_tag(tag)
    assert cache.get(name) is None
    assert cache.get_or_compute(name, lambda: b"three") == b"three"
    assert cache.delete(name)
    assert cache.get(name) is None


def test_stats_are_the_daemons_counters(cache: Cache, name: str) -> None:
    before = cache.stats()
    assert os.path.isdir(before["store"])
    cache.set(name, b"v")
    assert cache.stats()["commits"] > before["commits"]
