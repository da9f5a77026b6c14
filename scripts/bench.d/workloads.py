"""What is measured, and how: the loops a worker runs for a given time
(hits, misses, diskcache gets), the processes that run them together
(run_procs), the interleaved best of N (best_of), and the one-shot reads,
listings and checks the rows time or rely on."""

import json
import os
import random
import time
import traceback

from params import content, name

perf = time.perf_counter


def forked(factory, nproc, body):
    """Runs body(factory(k)) in `nproc` forked processes, started together
    once every factory(k) has returned (each is called in its process,
    after fork, so each opens its own descriptors and diskcache
    connection): what each body returned (JSON), in order."""
    go_r, go_w = os.pipe()
    kids = []
    for k in range(nproc):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(r)
                os.close(go_w)
                fn = factory(k)
                os.write(w, b"r")
                os.read(go_r, 1)
                os.write(w, json.dumps(body(fn)).encode())
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(w)
        kids.append((pid, r))
    os.close(go_r)
    for _, r in kids:
        os.read(r, 1)
    os.write(go_w, b"g" * nproc)
    os.close(go_w)
    done = []
    for pid, r in kids:
        data = b""
        while chunk := os.read(r, 4096):
            data += chunk
        os.close(r)
        os.waitpid(pid, 0)
        if not data:
            raise RuntimeError("a worker process failed")
        done.append(json.loads(data))
    return done


def run_procs(factory, nproc, seconds):
    """ops/s of `nproc` processes running factory(k)(seconds) together
    (factory(k) is called after fork, see `forked`)."""
    if nproc == 1:
        n, dt = factory(0)(seconds)
        return n / dt
    return sum(n / dt for n, dt in forked(factory, nproc, lambda fn: fn(seconds)))


def best_of(args, targets, measure):
    """Runs measure(target, run) for every target, interleaved, args.runs
    times; returns {target: best}."""
    results = {t: [] for t in targets}
    for r in range(args.runs):
        for t in targets:
            results[t].append(measure(t, r))
    return {t: max(v) for t, v in results.items()}


CHUNK = 500


def loop_paths(paths, body):
    """A worker that calls body(chunk) over `paths` (cycled) for `seconds`."""

    def run(seconds):
        n, i, total = 0, 0, len(paths)
        t0 = perf()
        end = t0 + seconds
        while True:
            body(paths[i : i + CHUNK])
            n += CHUNK
            i = (i + CHUNK) % total
            if perf() >= end:
                return n, perf() - t0

    return run


def hit_body(chunk):
    op, rd, cl, fl = os.open, os.read, os.close, os.O_RDONLY
    for p in chunk:
        fd = op(p, fl)
        rd(fd, 8192)
        cl(fd)


def miss_body(chunk):
    op, fl = os.open, os.O_RDONLY
    for p in chunk:
        try:
            fd = op(p, fl)
        except FileNotFoundError:
            continue
        os.close(fd)
        raise RuntimeError(f"{p} exists")


def random_paths(root, prefix, count, k, seed):
    rng = random.Random(seed * 1000 + k)
    picks = [rng.randrange(count) for _ in range(max(20_000, CHUNK * 4))]
    picks = picks[: len(picks) // CHUNK * CHUNK]
    return [os.fsencode(os.path.join(root, "keys", name(prefix, i))) for i in picks]


def open_diskcache(path):
    import diskcache

    return diskcache.Cache(path, tag_index=True)


def dc_get_worker(path, keys, expect_hit):
    cache = open_diskcache(path)
    get = cache.get

    def body(chunk):
        for key in chunk:
            v = get(key)
            if (v is None) == expect_hit:
                raise RuntimeError(f"diskcache {key}: unexpected {v!r:.20}")

    return loop_paths(keys, body)


def dc_keys(prefix, count, k, seed):
    rng = random.Random(seed * 1000 + k)
    picks = [rng.randrange(count) for _ in range(20_000)]
    return [name(prefix, i) for i in picks]


def warm(paths, size=None):
    """Reads every path once (so names, attributes and pages are cached)."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        data = os.read(fd, 8192)
        os.close(fd)
        if size is not None and len(data) != size:
            raise RuntimeError(f"{p}: {len(data)} bytes, expected {size}")


def check_content(root, prefix, indexes, size):
    for i in indexes:
        p = os.path.join(root, "keys", name(prefix, i))
        fd = os.open(p, os.O_RDONLY)
        data = b""
        while chunk := os.read(fd, 1 << 20):
            data += chunk
        os.close(fd)
        if data != content(i, size):
            raise RuntimeError(f"{p}: wrong content")


def opens(path):
    try:
        os.close(os.open(path, os.O_RDONLY))
        return True
    except FileNotFoundError:
        return False


def read_whole(path, size):
    t = perf()
    fd = os.open(path, os.O_RDONLY)
    n = 0
    while chunk := os.read(fd, 1 << 20):
        n += len(chunk)
    os.close(fd)
    dt = perf() - t
    if n != size:
        raise RuntimeError(f"{path}: read {n} bytes, expected {size}")
    return size / (1 << 20) / dt


def ls_l(path):
    """readdir + lstat of every name (what `ls -l` does, without printing)."""
    n = 0
    with os.scandir(path) as it:
        for e in it:
            e.stat(follow_symlinks=False)
            n += 1
    return n


def walk_store(data_dir):
    """The same listing natively: every key file of STORE/data/AA/BB/, lstat'ed."""
    n = 0
    with os.scandir(data_dir) as aas:
        for aa in aas:
            with os.scandir(aa.path) as bbs:
                for bb in bbs:
                    with os.scandir(bb.path) as files:
                        for f in files:
                            f.stat(follow_symlinks=False)
                            if f.name.startswith("key:"):
                                n += 1
    return n


def run_once(factory, nproc):
    """MiB/s of `nproc` processes running factory(k)() once, together:
    the bytes they all moved over the time from the first one's start to
    the last one's end. factory(k) runs in its process (after fork) and
    returns the function to time, which returns the bytes it moved."""
    def timed(fn):
        t0 = perf()
        n = fn()
        return n, t0, perf()

    done = forked(factory, nproc, timed)
    total = sum(n for n, _, _ in done)
    span = max(t1 for _, _, t1 in done) - min(t0 for _, t0, _ in done)
    return total / (1 << 20) / span


def timed_loop(step, seconds, batch=50):
    """Calls step(n) for n = 0, 1, ... in batches of `batch` until `seconds`
    have passed: (calls made, seconds taken)."""
    n, t0 = 0, perf()
    end = t0 + seconds
    while True:
        for _ in range(batch):
            step(n)
            n += 1
        if perf() >= end:
            return n, perf() - t0


COMMIT_FLAGS = os.O_CREAT | os.O_TRUNC | os.O_WRONLY


def commit_worker(keys, prefix, data, tags):
    """The commit row's loop: open a new name in `keys`, the two xattrs
    (tags[n % len(tags)], expire 3600), write `data`, close."""
    def one(n):
        fd = os.open(os.path.join(keys, name(prefix, n)), COMMIT_FLAGS, 0o644)
        os.setxattr(fd, "user.tags", tags[n % len(tags)])
        os.setxattr(fd, "user.expire", b"3600")
        os.write(fd, data)
        os.close(fd)

    return lambda seconds: timed_loop(one, seconds)


def plain_commit_worker(path_of, data, batch=50):
    """open(path_of(n)) of a new name, write `data`, close: a commit with
    nothing set."""
    def one(n):
        fd = os.open(path_of(n), COMMIT_FLAGS, 0o644)
        os.write(fd, data)
        os.close(fd)

    return lambda seconds: timed_loop(one, seconds, batch)


def new_name_commits(args, roots, prefix, data, seconds, batch=50):
    """The best of interleaved runs, for each label of `roots` (label:
    mount point), of one process committing `data` to new names in its
    keys/ (plain_commit_worker): ops/s by label."""
    def measure(t, r):
        keys = os.path.join(roots[t], "keys")

        def factory(k):
            return plain_commit_worker(lambda n: os.path.join(keys, name(f"{prefix}{r}p{k}x", n)), data, batch)

        return run_procs(factory, 1, seconds)

    return best_of(args, list(roots), measure)


def diskcache_set_worker(dc, prefix, data):
    """diskcache's commit: set(key, value, expire=3600, tag=...), one tag."""
    cache = open_diskcache(dc)
    return lambda seconds: timed_loop(
        lambda n: cache.set(name(prefix, n), data, expire=3600, tag=f"g{n % 100}"), seconds)


def write_entry(path, chunk, size, flags=os.O_CREAT | os.O_TRUNC | os.O_WRONLY):
    """open, write(chunk) until `size` bytes, close (the commit): bytes written."""
    fd = os.open(path, flags, 0o644)
    try:
        n = 0
        while n < size:
            n += os.write(fd, chunk if size - n >= len(chunk) else chunk[: size - n])
    finally:
        os.close(fd)
    return n


def check_written(path, chunk, size):
    """The entry at `path` holds `size` bytes of `chunk` repeated."""
    fd = os.open(path, os.O_RDONLY)
    try:
        n = 0
        while data := os.read(fd, len(chunk)):
            if data != chunk[: len(data)]:
                raise RuntimeError(f"{path}: wrong bytes at {n}")
            n += len(data)
    finally:
        os.close(fd)
    if n != size:
        raise RuntimeError(f"{path}: {n} bytes, expected {size}")


def read_repeatedly(path, size, seconds):
    """MiB/s of reading `path` whole, again and again for `seconds` (at
    least once)."""
    n, t0 = 0, perf()
    while True:
        fd = os.open(path, os.O_RDONLY)
        got = 0
        while chunk := os.read(fd, 1 << 20):
            got += len(chunk)
        os.close(fd)
        if got != size:
            raise RuntimeError(f"{path}: read {got} bytes, expected {size}")
        n += got
        dt = perf() - t0
        if dt >= seconds:
            return n / (1 << 20) / dt
