"""The miss rows: absent names seen before (negative entries) and seen
for the first time (one LOOKUP each)."""

import os
import time

from params import SEED, log, name
from workloads import (best_of, dc_get_worker, dc_keys, loop_paths, miss_body, open_diskcache,
                       random_paths, run_procs)

perf = time.perf_counter


class Misses:
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
