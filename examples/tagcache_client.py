#!/usr/bin/env python3
"""A small tagcachefs client: the tagcache library's API over plain files.

Standard library only. `mnt` is a tagcachefs mount point (keys/, tags/,
stale/ under it).

    value = get_or_compute(mnt, "blog-home", render_home,
                           tags=("blog-new", "bio"), expire=7 * 24 * 3600)
    invalidate_tag(mnt, "bio")

get_or_compute():
  * hit: read keys/<key>;
  * miss: open keys/<key> with O_CREAT|O_EXCL. Success means this process
    holds the key's single-flight lock (on every mount of the store, across
    processes and hosts): it computes, sets user.tags/user.expire on the
    writing descriptor, writes, and close() commits. If compute() raises,
    the descriptor is closed with nothing written, which commits nothing
    and releases the lock for the next process;
  * EEXIST: someone else is computing (or just committed). Serve
    stale/<key> if the previous content is still there; otherwise poll
    keys/<key> with an exponential back-off (retrying the O_EXCL open each
    round, so a holder that gave up is replaced at once) for at most
    `wait` seconds. Past that bound the holder is presumed stuck: compute
    here and store with a plain O_CREAT|O_TRUNC write, which the lock does
    not bind (the last commit wins).

Run as a script it replays the tagcache README's blog example against a
mount with asserts:

    python3 tagcache_client.py MOUNTPOINT [READ_MOUNT]

(READ_MOUNT: the daemon's --read-mount view, to read hits there.)

`python3 tagcache_client.py --race MOUNTPOINT KEY RECORD` is one contender
of a single-flight test: it waits for a line on stdin (so that a test can
release several processes together), then get_or_compute()s KEY with a
compute step that sleeps 1 s and appends a line to RECORD, and prints
"<how> <value>".
"""

import json
import os
import sys
import time

_CHUNK = 1 << 20


def _read(path):
    """The content of `path`, or None if it does not exist.

    Reads with os.open/os.read on purpose. Python's buffered open() (the
    default `open(path, "rb")`) checks isatty() on every open, which a FUSE
    mount receives as an ioctl request (TCGETS) per open: on the fast read
    mount that turns a hit the kernel serves alone into a round trip to the
    daemon (about 17k instead of 265k hits/s measured). os.open/os.read, or
    `open(path, "rb", buffering=0)`, send no ioctl.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        parts = []
        while True:
            b = os.read(fd, _CHUNK)
            if not b:
                return b"".join(parts)
            parts.append(b)
    finally:
        os.close(fd)


def _as_bytes(value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"compute() must return bytes or str, not {type(value).__name__}")


def _store(fd, value, tags, expire):
    """Sets the cache parameters on the writing descriptor, writes `value`
    and closes `fd`; close() commits and reports the commit's error."""
    try:
        if tags:
            os.setxattr(fd, "user.tags", ",".join(tags).encode())
        if expire is not None:
            os.setxattr(fd, "user.expire", str(int(expire)).encode())
        view = memoryview(value)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)  # the commit: raises its error (ENOSPC, EIO...)


def lookup(mnt, key, compute, tags=(), expire=0, wait=30.0, read_mnt=None,
           max_delay=0.25):
    """get_or_compute() that also says where the value came from: returns
    (value, how) with how one of "hit", "computed", "stale", "waited"
    (another process computed it while this one polled) or "fallback"
    (`wait` ran out: computed here without the lock)."""
    path = os.path.join(mnt, "keys", key)
    hit_path = os.path.join(read_mnt, "keys", key) if read_mnt else path
    deadline = None
    delay = 0.005
    while True:
        value = _read(hit_path)
        if value is not None:
            return value, "waited" if deadline is not None else "hit"
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            pass
        else:
            try:
                value = _as_bytes(compute())
            except BaseException:
                os.close(fd)  # nothing written: nothing committed, lock released
                raise
            _store(fd, value, tags, expire)
            return value, "computed"
        # Someone holds the single-flight lock, or committed just now.
        if deadline is None:
            stale = _read(os.path.join(mnt, "stale", key))
            if stale is not None:
                return stale, "stale"
            deadline = time.monotonic() + wait
        if time.monotonic() >= deadline:
            break
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, max_delay)
    value = _as_bytes(compute())
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_CLOEXEC, 0o644)
    _store(fd, value, tags, expire)
    return value, "fallback"


def get_or_compute(mnt, key, compute, tags=(), expire=0, wait=30.0, read_mnt=None):
    """The cached value of `key` on the tagcachefs mount `mnt` (bytes), or
    compute() it (bytes or str) and cache it with `tags` and `expire`.

    expire: seconds to live; 0 = never expires (as in tagcache); None =
        the mount's --default-expire.
    wait: the bound, in seconds, on waiting for another process that holds
        the key's single-flight lock when there is no stale content to serve.
        It polls with a back-off from 5 ms doubling to 250 ms; once `wait`
        has passed it computes the value itself and stores it without the
        lock (last commit wins). Choose it above your slowest compute().
    read_mnt: the daemon's read-only fast view (--read-mount), if any: hits
        are read there (the kernel serves them without asking the daemon);
        misses, locks and writes still go through `mnt`.
    """
    return lookup(mnt, key, compute, tags, expire, wait, read_mnt)[0]


def invalidate_tag(mnt, tag):
    """Invalidates every entry carrying `tag` (rmdir tags/<tag>). Returns
    False if there was no such tag."""
    try:
        os.rmdir(os.path.join(mnt, "tags", tag))
    except FileNotFoundError:
        return False
    return True


def invalidate_key(mnt, key):
    """Invalidates one entry (its content stays under stale/ until cleanup).
    Returns False if it was not live."""
    try:
        os.unlink(os.path.join(mnt, "keys", key))
    except FileNotFoundError:
        return False
    return True


def _blog_example(mnt, read_mnt=None):
    """The tagcache README's blog example, checked step by step."""
    week = 3600 * 24 * 7
    runs = []

    def home_page_content():
        runs.append(1)
        page = {"bio": {"name": "Huang junwen"}, "recent_blogs": ["tagcache"], "run": len(runs)}
        return json.dumps(page)

    def home():
        return lookup(mnt, "blog-home", home_page_content, tags=("blog-new", "bio"),
                      expire=week, read_mnt=read_mnt)

    first, how = home()
    assert (how, len(runs)) == ("computed", 1), (how, runs)
    assert json.loads(first)["run"] == 1
    second, how = home()
    assert (how, second, len(runs)) == ("hit", first, 1), (how, second, runs)

    key = os.path.join(mnt, "keys", "blog-home")
    st = os.stat(key)
    assert st.st_size == len(first) and st.st_nlink == 3, st
    assert abs(st.st_mtime - (time.time() + week)) < 60, "mtime is the expiry"
    assert sorted(os.listdir(os.path.join(mnt, "tags", "bio"))) == ["blog-home"]
    assert os.stat(os.path.join(mnt, "tags", "bio", "blog-home")).st_ino == st.st_ino
    tags = sorted(os.getxattr(key, "user.tags").decode().split(","))
    assert tags == ["bio", "blog-new"], tags
    left = int(os.getxattr(key, "user.expire"))
    assert week - 60 < left <= week, left

    # The bio changed.
    assert invalidate_tag(mnt, "bio")
    assert not invalidate_tag(mnt, "bio")
    # Checked with open(), which is what the mount guarantees once rmdir has
    # returned. (A stat of keys/blog-home can still succeed for a few
    # milliseconds: the daemon drops the kernel's cached name after it
    # replies to rmdir.)
    assert _read(key) is None
    assert "blog-home" not in os.listdir(os.path.join(mnt, "keys"))
    if read_mnt:  # the fast view forgets it before rmdir returns
        assert _read(os.path.join(read_mnt, "keys", "blog-home")) is None
    assert _read(os.path.join(mnt, "stale", "blog-home")) == first

    # The next request regenerates it; the new version is live again.
    third, how = home()
    assert (how, len(runs)) == ("computed", 2), (how, runs)
    assert json.loads(third)["run"] == 2
    assert _read(key) == third
    if read_mnt:
        assert _read(os.path.join(read_mnt, "keys", "blog-home")) == third

    # A compute that fails commits nothing and leaves the key free.
    def broken():
        raise RuntimeError("backend down")

    try:
        get_or_compute(mnt, "broken", broken)
    except RuntimeError:
        pass
    else:
        raise AssertionError("compute() error not raised")
    assert _read(os.path.join(mnt, "keys", "broken")) is None
    assert get_or_compute(mnt, "broken", lambda: b"ok") == b"ok"

    # Invalidating one key: served stale while a holder regenerates it.
    assert invalidate_key(mnt, "blog-home")
    if read_mnt:
        assert _read(os.path.join(read_mnt, "keys", "blog-home")) is None
    holder = os.open(key, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # "someone else computing"
    try:
        value, how = lookup(mnt, "blog-home", home_page_content, wait=0.1, read_mnt=read_mnt)
        assert (how, value, len(runs)) == ("stale", third, 2), (how, value, runs)
    finally:
        os.close(holder)  # gives up: nothing written, nothing committed

    # A holder that never finishes: past `wait`, compute here and store
    # without the lock.
    stuck = os.path.join(mnt, "keys", "stuck")
    holder = os.open(stuck, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    try:
        t0 = time.monotonic()
        value, how = lookup(mnt, "stuck", lambda: "done anyway", wait=0.3)
        waited = time.monotonic() - t0
        assert (how, value) == ("fallback", b"done anyway"), (how, value)
        assert 0.3 <= waited < 5, waited
        assert _read(stuck) == b"done anyway"
    finally:
        os.close(holder)
    assert _read(stuck) == b"done anyway"  # the holder gave up: nothing committed
    print("tagcache_client.py: the blog example held")


def _race(mnt, key, record):
    """One contender of the single-flight test."""
    sys.stdin.readline()  # released together with the others

    def compute():
        time.sleep(1)
        with open(record, "a") as f:
            f.write(f"{os.getpid()}\n")
        return f"computed by {os.getpid()} at {time.time():.6f}"

    value, how = lookup(mnt, key, compute, expire=0, wait=30.0)
    print(how, value.decode(), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--race":
        _race(*sys.argv[2:])
    elif len(sys.argv) in (2, 3):
        _blog_example(*sys.argv[1:])
    else:
        sys.exit(__doc__)
