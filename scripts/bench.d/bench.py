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
import re
import signal
import subprocess
import time

from mounts import (MOUNTS, Floor, Tagcachefs, drop_caches, forget_all, open_fds, populate,
                    proc_status, wait_idle)
from params import ENTRY, FILLER, FULL, QUICK, SEED, content, log, name
from report import Report, Table, environment
from workloads import (best_of, check_content, dc_get_worker, dc_keys, hit_body, loop_paths, ls_l,
                       miss_body, open_diskcache, opens, random_paths, read_whole, run_procs,
                       walk_store, warm)

perf = time.perf_counter


class Bench(Report):
    def __init__(self, args):
        self.args = args
        self.p = args.params
        self.table = Table()
        self.memory = []  # rows of the memory table
        self.requests = {}  # target -> workload -> {opcode: per op}
        self.extra = []  # notes
        self.dc = None
        self.load_start = os.getloadavg()[0]

    # -- setup of the main data set
    def setup(self):
        a, p = self.args, self.p
        w = a.work
        log(f"== setup: {p['hot']} entries of 4 KiB, one of {p['big'] >> 20} MiB, "
            f"{2 * a.runs} tags of {p['rm_entries']} entries")
        self.store = os.path.join(w, "store")
        specs = [f"k:0:{p['hot']}:{ENTRY}", f"big:0:1:{p['big']}"]
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
        with open(os.path.join(keys, name("big", 0)), "wb") as f:
            f.write(content(0, p["big"]))
        floor_specs = [f"k:0:{p['hot']}:{ENTRY}", f"big:0:1:{p['big']}"]
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

    # -- 4 KiB hits
    def hits(self):
        a, p = self.args, self.p
        # One view at a time: the daemon cannot hold the hot set on both
        # mounts at once (see forget_all).
        for view, floor, tcfs, target in (
            ("fast view", "floor-fast", "tcfs-fast", ("native", 0.7)),
            ("full mount", "floor", "tcfs", ("floor", 0.8)),
        ):
            forget_all(self.tc)
            files = ["native", floor, tcfs] + (["floor-direct"] if tcfs == "tcfs" else [])
            for t in files:
                warm([os.fsencode(os.path.join(self.roots[t], "keys", name("k", i)))
                      for i in range(p["hot"])], ENTRY)
            targets = files + (["diskcache"] if self.dc else [])
            for nproc in (1, 2):
                log(f"== 4 KiB hits, {view}, {nproc} process(es)")

                def measure(t, r, nproc=nproc):
                    if t == "diskcache":
                        f = lambda k: dc_get_worker(self.dc, dc_keys("k", p["hot"], k, SEED + r), True)
                    else:
                        f = lambda k: loop_paths(random_paths(self.roots[t], "k", p["hot"], k, SEED + r),
                                                 hit_body)
                    return run_procs(f, nproc, p["seconds"])

                b = best_of(a, targets, measure)
                what = "1 process" if nproc == 1 else "2 processes"
                note = ""
                if "floor-direct" in b:
                    note = (f"floor with read opens FOPEN_DIRECT_IO (every read a READ request): "
                            f"{Table.fmt(b['floor-direct'])} ops/s; tagcachefs / that = "
                            f"{b[tcfs] / b['floor-direct']:.2f}")
                self.table.add(f"4 KiB hit, {view}, {what}", "ops/s", b["native"], b[floor],
                               b[tcfs], b.get("diskcache"), target, note=note)

    # -- misses
    def misses(self):
        a, p = self.args, self.p
        log("== misses (repeated absent names)")
        for t in self.file_targets():
            for i in range(p["hot"]):
                try:
                    os.close(os.open(os.path.join(self.roots[t], "keys", name("m", i)), os.O_RDONLY))
                except FileNotFoundError:
                    pass
        targets = self.file_targets() + (["diskcache"] if self.dc else [])

        def measure(t, r):
            if t == "diskcache":
                f = lambda k: dc_get_worker(self.dc, dc_keys("m", p["hot"], k, SEED + r), False)
            else:
                f = lambda k: loop_paths(random_paths(self.roots[t], "m", p["hot"], k, SEED + r), miss_body)
            return run_procs(f, 1, p["seconds"])

        b = best_of(a, targets, measure)
        self.table.add("miss (absent name, seen before), fast view", "ops/s", b["native"],
                       b["floor-fast"], b["tcfs-fast"], b.get("diskcache"))
        self.table.add("miss (absent name, seen before), full mount", "ops/s", b["native"],
                       b["floor"], b["tcfs"], b.get("diskcache"))

        log("== misses (names never looked up before)")
        n = p["first_sight"]

        def measure_first(t, r):
            if t == "diskcache":
                cache = open_diskcache(self.dc)
                keys = [name(f"u{r}x", i) for i in range(n)]
                t0 = perf()
                for key in keys:
                    if cache.get(key) is not None:
                        raise RuntimeError("unexpected diskcache hit")
                dt = perf() - t0
                cache.close()
                return n / dt
            paths = [os.fsencode(os.path.join(self.roots[t], "keys", name(f"u{r}x", i))) for i in range(n)]
            t0 = perf()
            miss_body(paths)
            return n / (perf() - t0)

        b = best_of(a, targets, measure_first)
        self.table.add("miss (absent name, first sight), fast view", "ops/s", b["native"],
                       b["floor-fast"], b["tcfs-fast"], b.get("diskcache"))
        self.table.add("miss (absent name, first sight), full mount", "ops/s", b["native"],
                       b["floor"], b["tcfs"], b.get("diskcache"))

    # -- 64 MiB sequential reads
    def big_reads(self):
        a, p = self.args, self.p
        mib = p["big"] >> 20
        paths = {t: os.path.join(r, "keys", name("big", 0)) for t, r in self.roots.items()}
        log(f"== {mib} MiB sequential read, warm")
        for t in paths:
            read_whole(paths[t], p["big"])
        b = best_of(a, list(paths), lambda t, r: read_whole(paths[t], p["big"]))
        self.table.add(f"{mib} MiB sequential read, warm, fast view", "MiB/s", b["native"],
                       b["floor-fast"], b["tcfs-fast"])
        self.table.add(f"{mib} MiB sequential read, warm, full mount", "MiB/s", b["native"],
                       b["floor"], b["tcfs"],
                       note=f"floor with direct read opens: {Table.fmt(b['floor-direct'])} MiB/s")
        log(f"== {mib} MiB sequential read, cold (drop_caches before each)")

        def cold(t, r):
            drop_caches()
            return read_whole(paths[t], p["big"])

        b = best_of(a, list(paths), cold)
        note = "the floor holds the file in memory: its cold row is FUSE transport only"
        self.table.add(f"{mib} MiB sequential read, cold, fast view", "MiB/s", b["native"],
                       b["floor-fast"], b["tcfs-fast"], note=note)
        self.table.add(f"{mib} MiB sequential read, cold, full mount", "MiB/s", b["native"],
                       b["floor"], b["tcfs"],
                       note=f"floor with direct read opens: {Table.fmt(b['floor-direct'])} MiB/s")

    # -- commits
    def commits(self):
        a, p = self.args, self.p
        log("== commit: 4 KiB entry with 2 tags and an expiry")
        data = content(7, ENTRY)
        tags = [f"g{i},all".encode() for i in range(100)]
        targets = ["native", "floor", "tcfs"] + (["diskcache"] if self.dc else [])
        flags = os.O_CREAT | os.O_TRUNC | os.O_WRONLY

        def measure(t, r):
            if t == "diskcache":
                def f(k):
                    cache = open_diskcache(self.dc)

                    def run(seconds):
                        n, t0 = 0, perf()
                        end = t0 + seconds
                        while True:
                            for _ in range(50):
                                cache.set(name(f"c{r}p{k}x", n), data, expire=3600, tag=f"g{n % 100}")
                                n += 1
                            if perf() >= end:
                                return n, perf() - t0

                    return run

                return run_procs(f, 1, p["seconds"])
            keys = os.path.join(self.roots[t], "keys")

            def f(k):
                def run(seconds):
                    n, t0 = 0, perf()
                    end = t0 + seconds
                    while True:
                        for _ in range(50):
                            fd = os.open(os.path.join(keys, name(f"c{r}p{k}x", n)), flags, 0o644)
                            os.setxattr(fd, "user.tags", tags[n % 100])
                            os.setxattr(fd, "user.expire", b"3600")
                            os.write(fd, data)
                            os.close(fd)
                            n += 1
                        if perf() >= end:
                            return n, perf() - t0

                return run

            return run_procs(f, 1, p["seconds"])

        b = best_of(a, targets, measure)
        # The commits must have landed, with their tags.
        probe = os.path.join(self.tc.fast, "keys", name("c0p0x", 3))
        with open(probe, "rb", buffering=0) as f:
            if f.read() != data:
                raise RuntimeError("a committed entry reads back wrong")
        if os.getxattr(os.path.join(self.tc.mnt, "keys", name("c0p0x", 3)), "user.tags") != b"all,g3":
            raise RuntimeError("a committed entry lost its tags")
        st = self.tc.stats()
        if st["commit_errors"]:
            raise RuntimeError(f"{st['commit_errors']} commit errors")
        self.table.add("commit 4 KiB + 2 tags + expiry (full mount)", "ops/s", b["native"], b["floor"],
                       b["tcfs"], b.get("diskcache"),
                       note="open(O_CREAT|O_TRUNC|O_WRONLY), fsetxattr ×2, write, close; "
                            "native: same calls on ext4 (no atomic publish); "
                            "diskcache: set(key, value, expire=3600, tag=...) — one tag, its limit")

    # -- rmdir of a tag
    def rmdirs(self):
        a, p = self.args, self.p
        n = p["rm_entries"]
        log(f"== rmdir of a tag with {n} entries")
        # native: a directory of n hard links to n files
        files = os.path.join(self.native, "rmfiles")
        os.makedirs(files)
        for i in range(n):
            with open(os.path.join(files, f"f{i}"), "wb") as f:
                f.write(b"x")
        for r in range(a.runs):
            links = os.path.join(self.native, f"links{r}")
            os.makedirs(links)
            for i in range(n):
                os.link(os.path.join(files, f"f{i}"), os.path.join(links, f"{i}"))
        times = {"native": [], "cold": [], "hot": [], "diskcache": []}
        for r in range(a.runs):
            t0 = perf()
            subprocess.run(["rm", "-rf", os.path.join(self.native, f"links{r}")], check=True)
            times["native"].append(perf() - t0)

            forget_all(self.tc)
            t0 = perf()
            os.rmdir(os.path.join(self.tc.mnt, "tags", f"rmc{r}"))
            times["cold"].append(perf() - t0)

            # hot: every entry of the tag read on the fast view first, so the
            # kernel holds their names there and rmdir returns only once the
            # daemon has invalidated them (on the full mount that happens
            # after the reply). Not on both mounts: the daemon's descriptors
            # would not suffice (see forget_all).
            hot = [name(f"rh{r}x", i) for i in range(n)]
            forget_all(self.tc)
            warm([os.path.join(self.tc.fast, "keys", k) for k in hot], ENTRY)
            t0 = perf()
            os.rmdir(os.path.join(self.tc.mnt, "tags", f"rmh{r}"))
            times["hot"].append(perf() - t0)
            for root in (self.tc.fast, self.tc.mnt):
                for k in (hot[0], hot[-1]):
                    if opens(os.path.join(root, "keys", k)):
                        raise RuntimeError(f"{root}/keys/{k} outlived rmdir of its tag")

            if self.dc:
                cache = open_diskcache(self.dc)
                t0 = perf()
                got = cache.evict(f"rmd{r}")
                times["diskcache"].append(perf() - t0)
                cache.close()
                if got != n:
                    raise RuntimeError(f"diskcache evicted {got}, not {n}")
        best = {k: (n / min(v) if v else None) for k, v in times.items()}
        ms = {k: (f"{min(v) * 1000:.0f} ms" if v else "—") for k, v in times.items()}
        self.table.add(f"rmdir tags/t, {n:,} entries, none cached by the kernel", "entries/s",
                       best["native"], None, best["cold"], best["diskcache"],
                       note=f"tagcachefs {ms['cold']}; native `rm -rf` of a dir of {n:,} hard links "
                            f"{ms['native']}; diskcache evict(tag) {ms['diskcache']}")
        self.table.add(f"rmdir tags/t, {n:,} entries, all read on the fast view first", "entries/s",
                       best["native"], None, best["hot"], best["diskcache"],
                       note=f"tagcachefs {ms['hot']}")

    # -- scale: hits and memory as the store grows, ls -l at ls_sizes
    def scale(self):
        a, p = self.args, self.p
        store = os.path.join(a.work, "scale-store")
        have = 0
        hot_total = min(p["hot"], 10_000)
        rows = []
        for size in p["sizes"]:
            hot = min(size, hot_total)
            specs = []
            have_hot = min(have, hot_total)
            if hot > have_hot:
                specs.append(f"k:{have_hot}:{hot - have_hot}:{ENTRY}")
            fill_have = max(0, have - hot_total)
            fill = size - hot
            if fill > fill_have:
                specs.append(f"f:{fill_have}:{fill - fill_have}:{FILLER}")
            log(f"== store of {size:,} entries")
            dt = populate(a, store, specs) if specs else 0.0
            have = size
            log(f"   populated in {dt:.1f} s; mounting")
            tc = Tagcachefs(a, store, f"scale{size}")
            sweep_cpu = wait_idle(tc.pid)
            m0 = proc_status(tc.pid)
            n0 = tc.stats()["kernel_nodes"]
            f0 = open_fds(tc.pid)
            res = {}
            for t, root in (("tcfs", tc.mnt), ("tcfs-fast", tc.fast)):
                forget_all(tc)
                roots = {"native": self.native, t: root}
                for r_ in roots.values():
                    warm([os.fsencode(os.path.join(r_, "keys", name("k", i))) for i in range(hot)], ENTRY)
                if t == "tcfs":
                    m1 = proc_status(tc.pid)
                    n1 = tc.stats()["kernel_nodes"]
                    f1 = open_fds(tc.pid)

                def measure(tt, r, roots=roots):
                    f = lambda k: loop_paths(random_paths(roots[tt], "k", hot, k, SEED + r), hit_body)
                    return run_procs(f, 1, p["seconds"])

                b = best_of(a, list(roots), measure)
                res[t] = (b[t], b["native"])
            rows.append((size, hot, res))
            mem = dict(size=size, sweep_cpu=sweep_cpu, rss_mount=m0["VmRSS"], rss_hot=m1["VmRSS"],
                       nodes_mount=n0, nodes_hot=n1, hwm=m1["VmHWM"], fds_mount=f0, fds_hot=f1)
            if size in p["ls_sizes"]:
                mem.update(self.ls(store, size, tc, hot))
            mem["hwm"] = proc_status(tc.pid)["VmHWM"]
            self.memory.append(mem)
            tc.stop()
        base = rows[0]
        for size, hot, res in rows:
            for t, view in (("tcfs-fast", "fast view"), ("tcfs", "full mount")):
                got, native = res[t]
                norm = (got / native) / (base[2][t][0] / base[2][t][1])
                self.table.add(f"4 KiB hit, {view}, store of {size:,} (hits on {hot:,})", "ops/s",
                               native, None, got, None,
                               ("flat", 0.8) if size == rows[-1][0] else None,
                               note=f"vs the {base[0]:,} store: {got / base[2][t][0]:.2f}× raw, "
                                    f"{norm:.2f}× relative to native in the same window")
                self.table.rows[-1]["flat"] = norm

    def ls(self, store, size, tc, hot):
        """ls -l keys/ on every path; returns the daemon's memory after the
        full mount's listing."""
        a, p = self.args, self.p
        log(f"== ls -l keys/ with {size:,} entries")
        floor = Floor(a, f"lsfloor{size}", False, [f"k:0:{hot}:{ENTRY}", f"f:0:{size - hot}:{FILLER}"])
        targets = {
            "native": lambda: walk_store(os.path.join(store, "data")),
            "floor": lambda: ls_l(os.path.join(floor.mnt, "keys")),
            "tcfs-fast": lambda: ls_l(os.path.join(tc.fast, "keys")),
            "tcfs": lambda: ls_l(os.path.join(tc.mnt, "keys")),
        }
        b, listed, errors, mem = {}, {}, {}, {}
        try:
            # One path at a time, each starting with nothing cached, then
            # listed once to warm and args.runs times measured: the daemon
            # cannot hold a large listing on both mounts at once.
            for t, fn in targets.items():
                forget_all(tc)
                rates = []
                for run in range(a.runs + 1):
                    t0 = perf()
                    try:
                        got = fn()
                    except OSError as e:
                        errors[t] = f"listing {run + 1}: {e.strerror}"
                        continue
                    rates.append(got / (perf() - t0))
                    listed[t] = min(listed.get(t, got), got)
                # The first listing only warms, unless nothing else worked.
                b[t] = max(rates[1:] or rates or [0.0])
                listed.setdefault(t, 0)
                if t == "tcfs":
                    m = proc_status(tc.pid)
                    mem = dict(rss_ls=m["VmRSS"], nodes_ls=tc.stats()["kernel_nodes"],
                               fds_ls=open_fds(tc.pid))
        finally:
            floor.stop()
        for t in ("native", "floor"):
            if listed[t] != size:
                raise RuntimeError(f"ls -l on {t}: {listed[t]} entries, expected {size}")
        note = ("os.scandir + lstat of each name, kernel caches warm (one listing before the "
                "measured ones); native = the same over STORE/data/AA/BB/ (the files the daemon lists)")
        for t, view in (("tcfs", "full mount"), ("tcfs-fast", "fast view")):
            self.table.add(f"ls -l keys/, {size:,} entries, {view}", "entries/s", b["native"],
                           b["floor"], b[t], None, ("native", 0.5),
                           note=note if t == "tcfs" else "")
            if listed[t] != size or t in errors:
                import resource

                limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
                self.table.rows[-1]["incomplete"] = f"listed {listed[t]:,} of {size:,}"
                self.table.rows[-1]["note"] = (
                    f"INCOMPLETE: listed {listed[t]:,} of {size:,} names, no error reported to ls"
                    + (f"; then {errors[t]}" if t in errors else "")
                    + f" (the daemon holds a descriptor per node: {mem.get('fds_ls', '?')} open after "
                    f"the full mount's listings, RLIMIT_NOFILE {limit:,}); the rate counts what was "
                    "listed. " + self.table.rows[-1]["note"])
        return mem

    # -- FUSE requests per operation, counted from fuser's debug log
    def request_counts(self):
        a, p = self.args, self.p
        n = p["probe_ops"]
        log("== FUSE requests per operation (fuser debug log)")
        env = dict(os.environ, RUST_LOG="fuser=debug")
        logs = {}
        store = os.path.join(a.work, "probe-store")
        populate(a, store, [f"k:0:{n}:{ENTRY}"])
        logs["tcfs"] = os.path.join(a.work, "probe-tc.log")
        tc = Tagcachefs(a, store, "probe", env=env, log_file=logs["tcfs"])
        wait_idle(tc.pid)
        logs["tcfs-fast"] = logs["tcfs"]
        floors = []
        try:
            for tag, fast in (("floor", False), ("floor-fast", True), ("floor-direct", "direct")):
                logs[tag] = os.path.join(a.work, f"probe-{tag}.log")
                floors.append(Floor(a, f"probe{tag}", fast, [f"k:0:{n}:{ENTRY}"], env=env,
                                    log_file=logs[tag]))
            roots = {"floor": floors[0].mnt, "floor-fast": floors[1].mnt,
                     "floor-direct": floors[2].mnt, "tcfs": tc.mnt, "tcfs-fast": tc.fast}
            pat = re.compile(rb"FUSE\(\s*\d+\) ino 0x[0-9a-f]+ ([A-Z_]+)")

            def settle(path):
                """Waits until the log stops growing (RELEASE and FORGET
                arrive after the call that caused them returns)."""
                size, still = os.path.getsize(path), perf()
                end = perf() + 3
                while perf() < end and perf() - still < 0.2:
                    time.sleep(0.05)
                    now = os.path.getsize(path)
                    if now != size:
                        size, still = now, perf()

            def count(t, fn, ops):
                settle(logs[t])
                start = os.path.getsize(logs[t])
                fn()
                settle(logs[t])
                with open(logs[t], "rb") as f:
                    f.seek(start)
                    found = {}
                    for m in pat.finditer(f.read()):
                        found[m.group(1).decode()] = found.get(m.group(1).decode(), 0) + 1
                return {k: v / ops for k, v in sorted(found.items())}

            for t, root in roots.items():
                paths = [os.fsencode(os.path.join(root, "keys", name("k", i))) for i in range(n)]
                absent = [os.fsencode(os.path.join(root, "keys", name("m", i))) for i in range(n)]
                fresh = [os.fsencode(os.path.join(root, "keys", name("z", i))) for i in range(n)]
                warm(paths, ENTRY)
                miss_body(absent)
                res = {
                    "hit (warm)": count(t, lambda: warm(paths, ENTRY), n),
                    "miss, seen before": count(t, lambda: miss_body(absent), n),
                    "miss, first sight": count(t, lambda: miss_body(fresh), n),
                }
                if t in ("floor", "tcfs"):
                    def commit_all(root=root):
                        for i in range(n):
                            fd = os.open(os.path.join(root, "keys", name("w", i)),
                                         os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
                            os.setxattr(fd, "user.tags", b"a,b")
                            os.setxattr(fd, "user.expire", b"3600")
                            os.write(fd, b"x" * ENTRY)
                            os.close(fd)
                    res["commit"] = count(t, commit_all, n)
                self.requests[t] = res
        finally:
            for f in floors:
                f.stop()
            tc.stop()


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
    ap.add_argument("--only", help="comma-separated phases: hits,misses,big,commit,rmdir,scale,requests")
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
    phases = ["hits", "misses", "big", "commit", "rmdir", "scale", "requests"]
    only = a.only.split(",") if a.only else phases

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
                 "commit": bench.commits, "rmdir": bench.rmdirs, "scale": bench.scale,
                 "requests": bench.request_counts}[ph]()
        report = bench.report(started)
    finally:
        MOUNTS.stop_all()
    print(report)
    out = a.out or os.path.join(os.path.dirname(a.bin), "bench-last.txt")
    with open(out, "w") as f:
        f.write(report + "\n")
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump(dict(rows=bench.table.rows, memory=bench.memory, requests=bench.requests,
                       environment=environment(a), params=a.params), f, indent=1, default=str)
    log(f"(written to {out})")


if __name__ == "__main__":
    main()
