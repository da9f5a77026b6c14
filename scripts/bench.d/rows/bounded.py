"""The bounded-store rows: commits into a store held at its --max-size,
where every commit has to evict, against the same commits into the
unbounded mount of the same run."""

import os
import time

from mounts import Tagcachefs
from params import ENTRY, content, log, name
from workloads import new_name_commits, write_entry

perf = time.perf_counter


class Bounded:
    def bounded(self):
        a, p = self.args, self.p
        bound = p["bound"]
        log(f"== commits into a store at its bound ({bound >> 20} MiB)")
        store = os.path.join(a.work, "bstore")
        os.makedirs(store, exist_ok=True)
        tc = Tagcachefs(a, store, "bounded", extra=["--max-size", str(bound)])
        data = content(3, ENTRY)
        try:
            # Filled past its bound first: from here on each commit evicts.
            keys = os.path.join(tc.mnt, "keys")
            for i in range(bound // ENTRY + 256):
                write_entry(os.path.join(keys, name("fill", i)), data, len(data))
            roots = {"unbounded": self.tc.mnt, "bounded": tc.mnt}

            before = tc.stats()
            t0 = perf()
            b = new_name_commits(a, roots, "b", data, p["seconds"])
            spent = perf() - t0
            st = tc.stats()
            if st["commit_errors"] or st["size_bytes"] > bound:
                raise RuntimeError(f"bounded store: {st['commit_errors']} commit errors, "
                                   f"size {st['size_bytes']} of {bound}")
            evicted = st["evictions_size"] - before["evictions_size"]
            if evicted == 0:
                raise RuntimeError("the bounded store evicted nothing")
            self.table.add(f"commit 4 KiB into a full {bound >> 20} MiB --max-size store", "ops/s",
                           b["unbounded"], None, b["bounded"],
                           note="open(O_CREAT|O_TRUNC|O_WRONLY), write, close; the native column "
                                "is the unbounded full mount of this run, same calls")
            self.extra.append(
                f"bounded store: {evicted} evictions in {spent:.1f} s of both runs "
                f"({st['eviction_waits'] - before['eviction_waits']} commits waited "
                f"{st['eviction_wait_seconds'] - before['eviction_wait_seconds']:.3f} s in all); "
                f"size {st['size_bytes']} of {bound} bytes")
        finally:
            tc.stop()
