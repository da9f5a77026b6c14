"""The 4 KiB hit rows: random open/read/close of the hot set, fast view
and full mount, 1 and 2 processes, against native, the floors and
diskcache."""

import os

from mounts import forget_all
from params import ENTRY, SEED, log, name
from report import Table
from workloads import (best_of, dc_get_worker, dc_keys, hit_body, loop_paths, random_paths,
                       run_procs, warm)


class Hits:
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
