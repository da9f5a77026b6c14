"""The durable-mode row: commits through a `--durable` mount (each version
fsynced before it is published, its directories after) against the same
commits through the default mount of the same run."""

import os
import time

from mounts import Tagcachefs
from params import ENTRY, content, log, name
from workloads import best_of, run_procs

perf = time.perf_counter


class Durable:
    def durable(self):
        a, p = self.args, self.p
        log("== commits through a --durable mount")
        store = os.path.join(a.work, "dstore")
        os.makedirs(store, exist_ok=True)
        tc = Tagcachefs(a, store, "durable", extra=["--durable"])
        data = content(4, ENTRY)
        flags = os.O_CREAT | os.O_TRUNC | os.O_WRONLY
        try:
            roots = {"default": self.tc.mnt, "durable": tc.mnt}

            def measure(t, r):
                keys = os.path.join(roots[t], "keys")

                def f(k):
                    def run(seconds):
                        n, t0 = 0, perf()
                        end = t0 + seconds
                        while True:
                            for _ in range(10):
                                fd = os.open(os.path.join(keys, name(f"d{r}p{k}x", n)), flags, 0o644)
                                os.write(fd, data)
                                os.close(fd)
                                n += 1
                            if perf() >= end:
                                return n, perf() - t0

                    return run

                return run_procs(f, 1, p["seconds"])

            b = best_of(a, ["default", "durable"], measure)
            st = tc.stats()
            if st["commit_errors"] or st["commits"] == 0:
                raise RuntimeError(f"durable mount: {st['commits']} commits, "
                                   f"{st['commit_errors']} errors")
            self.table.add("commit 4 KiB through a --durable mount", "ops/s",
                           b["default"], None, b["durable"],
                           note="open(O_CREAT|O_TRUNC|O_WRONLY), write, close; the native column "
                                "is the default full mount of this run, same calls; durable "
                                "fsyncs the version, then the directories it was linked into")
        finally:
            tc.stop()
