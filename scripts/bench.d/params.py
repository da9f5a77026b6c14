"""What every part of the benchmark driver shares: the sizes of a full and
a --quick run, how entries are named and filled, and the progress log."""

import sys
import time

FULL = dict(
    hot=10_000,  # 4 KiB entries hit at random
    big_sizes=[1 << 20, 64 << 20, 256 << 20],  # the sequential read and write entries
    write_bytes=64 << 20,  # at least this much written per process per write run
    cold_bytes=64 << 20,  # at least this much read per cold-read run (drop_caches before each entry)
    read_seconds=0.3,  # warm reads of an entry repeated for at least this long per run
    rm_entries=10_000,  # entries of the tag removed by rmdir
    first_sight=20_000,  # unique absent names per run
    seconds=1.0,  # one throughput run
    runs=3,  # best of
    sizes=[1_000, 100_000, 1_000_000],  # store sizes of the scale rows
    ls_sizes=[1_000, 100_000, 1_000_000],  # store sizes of the ls -l rows
    probe_ops=1_000,  # ops per request-count probe
    bound=64 << 20,  # --max-size of the bounded-store row
    tagged=100_000,  # entries of the big tag in the largest scale store
)
QUICK = dict(
    hot=1_000,
    big_sizes=[1 << 20, 4 << 20, 16 << 20],
    write_bytes=8 << 20,
    cold_bytes=8 << 20,
    read_seconds=0.05,
    rm_entries=1_000,
    first_sight=1_000,
    seconds=0.1,
    runs=3,
    sizes=[200, 1_000, 2_000],
    ls_sizes=[1_000],
    probe_ops=100,
    bound=4 << 20,
    tagged=500,
)
ENTRY = 4096
FILLER = 64  # size of the filler entries of the scale stores
SEED = 6


def content(i, size):
    """Entry i's bytes, as examples/populate.rs and floorfs make them."""
    start = (i * 31) % 251
    period = bytes((start + j) % 251 for j in range(251))
    return (period * (size // 251 + 1))[:size]


def name(prefix, i):
    return f"{prefix}{i:07d}"


def mib(size):
    """A size in MiB, for row names ("64 MiB")."""
    return f"{size >> 20} MiB"


def big_prefix(size):
    """The name prefix of the big entry of `size` bytes (one per size)."""
    return f"big{size >> 20}m"


T0 = time.monotonic()


def log(*a):
    print(f"[{time.monotonic() - T0:5.0f} s]", *a, file=sys.stderr, flush=True)
