"""The ls -l rows: readdir and lstat of every name of keys/ (run by the
scale rows, on their stores)."""

import hashlib
import json
import os
import subprocess
import time

from mounts import Floor, forget_all, open_fds, proc_status
from params import ENTRY, FILLER, log
from workloads import ls_l, walk_store

perf = time.perf_counter


def tag_dir(store, tag):
    """STORE/data/CC/DD/tag:<hex(tag)>, as src/store/layout.rs names it."""
    file = "tag:" + tag.encode().hex()
    h = hashlib.md5(file.encode()).hexdigest()
    return os.path.join(store, "data", h[:2], h[2:4], file)


class Listings:
    def ls(self, store, size, tc, hot):
        """ls -l keys/ on every path; returns the daemon's memory after the
        full mount's listing."""
        a = self.args
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

    def ls_tag(self, store, size, tc, tag, tagged):
        """ls tags/<tag>/ (names only) of a tag with `tagged` entries in a
        store of `size`, vs the native listing of the tag's link dir."""
        a = self.args
        log(f"== ls tags/{tag}/ with {tagged:,} entries in a {size:,} store")
        link_dir = tag_dir(store, tag)

        def native():
            n = 0
            with os.scandir(link_dir) as sss:
                for ss in sss:
                    n += len(os.listdir(ss.path))
            return n

        targets = {
            "native": native,
            "tcfs-fast": lambda: len(os.listdir(os.path.join(tc.fast, "tags", tag))),
            "tcfs": lambda: len(os.listdir(os.path.join(tc.mnt, "tags", tag))),
        }
        b = {}
        for t, fn in targets.items():
            forget_all(tc)
            rates = []
            for _ in range(a.runs + 1):
                t0 = perf()
                got = fn()
                rates.append(got / (perf() - t0))
                if got != tagged:
                    raise RuntimeError(f"ls tags/{tag}/ on {t}: {got} names, expected {tagged}")
            b[t] = max(rates[1:])
        note = ("os.listdir, kernel caches warm; native = the same names listed from "
                "STORE/data/CC/DD/tag:<hex>/SS/ (the links the daemon walks)")
        for t, view in (("tcfs", "full mount"), ("tcfs-fast", "fast view")):
            self.table.add(f"ls tags/{tag}/, {tagged:,} entries in a {size:,} store, {view}",
                           "entries/s", b["native"], None, b[t], None, ("native", 0.5),
                           note=note if t == "tcfs" else "")

    def store_walks(self, store, size):
        """`tagcachefs stats` and `cleanup --dry-run` over the whole store,
        vs a native walk of its data dir (readdir + lstat of every file)."""
        a = self.args
        log(f"== stats and cleanup --dry-run of a {size:,} store")
        tool = os.path.join(a.bin, "tagcachefs")

        def run(*args):
            t0 = perf()
            out = subprocess.run([tool, *args, store], check=True, capture_output=True).stdout
            return json.loads(out), perf() - t0

        rates = {"native": [], "stats": [], "cleanup": []}
        counted = None
        for _ in range(a.runs):
            t0 = perf()
            n = walk_store(os.path.join(store, "data"))
            rates["native"].append(n / (perf() - t0))
            st, dt = run("stats", "--json")
            counted = st["entries"] + st["stale_entries"]
            rates["stats"].append(counted / dt)
            rep, dt = run("cleanup", "--dry-run", "--json")
            if rep["entries"]:
                raise RuntimeError(f"cleanup --dry-run would remove {rep['entries']} live entries")
            rates["cleanup"].append(counted / dt)
        if counted < size:
            raise RuntimeError(f"stats counted {counted} of {size} entries")
        b = {k: max(v) for k, v in rates.items()}
        self.table.add(f"tagcachefs stats, {size:,}-entry store", "entries/s", b["native"], None,
                       b["stats"], None,
                       note="the CLI without a mount: every key file's metadata and record, every "
                            "tag link; native = readdir + lstat of every file under STORE/data")
        self.table.add(f"tagcachefs cleanup --dry-run, {size:,}-entry store", "entries/s",
                       b["native"], None, b["cleanup"], None,
                       note="judges every entry and tag link as cleanup does, removes nothing")
