#!/usr/bin/env python3
"""The benchmark driver behind scripts/bench (see doc/BENCHMARKING.md).

Every workload runs in the same process run against every path it applies
to, interleaved (run 1 of each path, then run 2 of each, ...), best of N:

  native      the same system calls on a plain directory (same file system)
  floor       examples/floorfs.rs: a FUSE file system that only answers,
              holding its files in memory (full-mount flags, and --fast for
              the fast view's floor)
  tagcachefs  one daemon serving the full mount and the fast view
  diskcache   python-diskcache 5.x, where it has an equivalent call

The client is Python: os.open/os.read/os.close (no buffered open()).
Throughputs are ops/s (or MiB/s, entries/s, as the unit column says).
"""

import argparse
import json
import os
import signal
import time

from mounts import MOUNTS, Floor, Tagcachefs, populate, proc_status, wait_idle
from params import ENTRY, FULL, QUICK, big_prefix, content, log, name
from report import Report, Table, environment
from rows.bounded import Bounded
from rows.commits import Commits
from rows.durable import Durable
from rows.hits import Hits
from rows.listings import Listings
from rows.misses import Misses
from rows.reads import Reads
from rows.request_counts import RequestCounts
from rows.rmdir import Rmdirs
from rows.scale import Scale
from rows.store_on import StoreOn
from rows.writes import Writes
from workloads import check_content, open_diskcache


class Bench(Hits, Misses, Reads, Writes, Commits, Bounded, Durable, Rmdirs, Scale, Listings, RequestCounts, StoreOn,
            Report):
    """One run: the paths every row compares (made by setup), the table
    the rows add to and the tables below it. Each group of rows is a base
    class of its own, in rows/."""

    def __init__(self, args):
        self.args = args
        self.p = args.params
        self.table = Table()
        self.memory = []  # rows of the memory table
        self.requests = {}  # target -> workload -> {opcode: per op}
        self.extra = []  # notes
        self.store_on_rows = []  # --store-on: the rows against the local store
        self.dc = None
        self.load_start = os.getloadavg()[0]

    # -- setup of the main data set
    def setup(self):
        a, p = self.args, self.p
        w = a.work
        sizes = ", ".join(f"{s >> 20}" for s in p["big_sizes"])
        log(f"== setup: {p['hot']} entries of 4 KiB, one each of {sizes} MiB, "
            f"{2 * a.runs} tags of {p['rm_entries']} entries")
        self.store = os.path.join(w, "store")
        big = [f"{big_prefix(s)}:0:1:{s}" for s in p["big_sizes"]]
        specs = [f"k:0:{p['hot']}:{ENTRY}"] + big
        for r in range(a.runs):
            specs.append(f"rc{r}x:0:{p['rm_entries']}:{ENTRY}:rmc{r}")
            specs.append(f"rh{r}x:0:{p['rm_entries']}:{ENTRY}:rmh{r}")
        dt = populate(a, self.store, specs)
        log(f"   populated the store in {dt:.1f} s")
        # native: the same files in a plain directory of the same file system
        self.native = os.path.join(w, "native")
        keys = os.path.join(self.native, "keys")
        os.makedirs(keys)
        for i in range(p["hot"]):
            with open(os.path.join(keys, name("k", i)), "wb") as f:
                f.write(content(i, ENTRY))
        for s in p["big_sizes"]:
            with open(os.path.join(keys, name(big_prefix(s), 0)), "wb") as f:
                f.write(content(0, s))
        floor_specs = [f"k:0:{p['hot']}:{ENTRY}"] + big
        self.floor = Floor(a, "floor", False, floor_specs)
        self.floor_fast = Floor(a, "floorfast", True, floor_specs)
        # Not a column: the floor of read opens answered FOPEN_DIRECT_IO, as
        # tagcachefs's full mount answers them since 8fdba03 (see the notes).
        self.floor_direct = Floor(a, "floordirect", "direct", floor_specs)
        self.tc = Tagcachefs(a, self.store, "tc")
        self.tc_idle_cpu = wait_idle(self.tc.pid)
        self.tc_rss0 = proc_status(self.tc.pid)
        self.roots = {
            "native": self.native,
            "floor": self.floor.mnt,
            "floor-fast": self.floor_fast.mnt,
            "floor-direct": self.floor_direct.mnt,
            "tcfs": self.tc.mnt,
            "tcfs-fast": self.tc.fast,
        }
        for t, root in self.roots.items():
            check_content(root, "k", [0, 1, p["hot"] - 1], ENTRY)
        if a.diskcache:
            self.dc = os.path.join(w, "diskcache")
            cache = open_diskcache(self.dc)
            for i in range(p["hot"]):
                cache.set(name("k", i), content(i, ENTRY))
            for r in range(a.runs):
                for i in range(p["rm_entries"]):
                    cache.set(name(f"rd{r}x", i), content(i, ENTRY), tag=f"rmd{r}")
            if cache.get(name("k", 1)) != content(1, ENTRY):
                raise RuntimeError("diskcache returned wrong content")
            cache.close()

    def file_targets(self):
        return [t for t in self.roots if t != "floor-direct"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, help="scratch directory (scripts/bench makes it)")
    ap.add_argument("--bin", required=True, help="target/release")
    ap.add_argument("--quick", action="store_true", help="small sizes, short runs")
    ap.add_argument("--cache-timeout", type=float, default=60.0,
                    help="--cache-timeout of tagcachefs and floorfs (default 60)")
    ap.add_argument("--runs", type=int, help="best of how many runs")
    ap.add_argument("--seconds", type=float, help="length of one throughput run")
    ap.add_argument("--sizes", help="store sizes of the scale rows, comma-separated")
    ap.add_argument("--only", help="comma-separated phases: "
                    "hits,misses,big,bigwrite,commit,bounded,durable,rmdir,scale,requests,store-on")
    ap.add_argument("--store-on", metavar="DIR",
                    help="also measure hits and commits on a store in DIR (a GlusterFS mount, say) "
                         "against the local store: the store-on phase, run only when asked")
    ap.add_argument("--daemon-args", default="", help="extra tagcachefs options, e.g. '--max-nodes 18000'")
    ap.add_argument("--out", help="also write the report here (default target/bench-last.txt)")
    a = ap.parse_args()
    a.params = dict(QUICK if a.quick else FULL)
    if a.seconds:
        a.params["seconds"] = a.seconds
    if a.sizes:
        a.params["sizes"] = [int(s) for s in a.sizes.split(",")]
        a.params["ls_sizes"] = [x for x in a.params["ls_sizes"] if x in a.params["sizes"]]
    a.runs = a.runs or a.params["runs"]
    a.work = os.path.realpath(a.work)
    a.bin = os.path.realpath(a.bin)
    try:
        import diskcache  # noqa: F401

        a.diskcache = True
    except ImportError:
        a.diskcache = False
    phases = ["hits", "misses", "big", "bigwrite", "commit", "bounded", "durable", "rmdir", "scale", "requests",
              "store-on"]
    only = a.only.split(",") if a.only else [ph for ph in phases if ph != "store-on" or a.store_on]
    if "store-on" in only and not a.store_on:
        ap.error("the store-on phase needs --store-on DIR")

    def on_signal(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")

    signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    bench = Bench(a)
    try:
        bench.setup()
        for ph in phases:
            if ph in only:
                {"hits": bench.hits, "misses": bench.misses, "big": bench.big_reads,
                 "bigwrite": bench.big_writes,
                 "commit": lambda: (bench.commits(), bench.put_commits()), "bounded": bench.bounded, "durable": bench.durable, "rmdir": bench.rmdirs, "scale": bench.scale,
                 "requests": bench.request_counts, "store-on": bench.store_on}[ph]()
        report = bench.report(started)
    finally:
        MOUNTS.stop_all()
    print(report)
    out = a.out or os.path.join(os.path.dirname(a.bin), "bench-last.txt")
    with open(out, "w") as f:
        f.write(report + "\n")
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump(dict(rows=bench.table.rows, memory=bench.memory, requests=bench.requests,
                       store_on=bench.store_on_rows,
                       environment=environment(a), params=a.params), f, indent=1, default=str)
    log(f"(written to {out})")


if __name__ == "__main__":
    main()
