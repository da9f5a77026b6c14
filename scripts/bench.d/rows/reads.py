"""The sequential-read rows: entries of 1, 64 and 256 MiB read whole in
1 MiB reads, warm and cold, on the fast view and the full mount."""

import os

from mounts import drop_caches, recycle_memory
from params import big_prefix, log, mib, name
from report import Table
from workloads import best_of, read_repeatedly, read_whole


class Reads:
    def big_reads(self):
        a, p = self.args, self.p
        for size in p["big_sizes"]:
            paths = {t: os.path.join(r, "keys", name(big_prefix(size), 0)) for t, r in self.roots.items()}
            log(f"== {mib(size)} sequential read, warm")
            for t in paths:
                read_whole(paths[t], size)
            b = best_of(a, list(paths), lambda t, r: read_repeatedly(paths[t], size, p["read_seconds"]))
            direct = f"floor with direct read opens: {Table.fmt(b['floor-direct'])} MiB/s"
            warm_target = ("native", 0.5) if size == 64 << 20 else None
            self.table.add(f"{mib(size)} sequential read, warm, fast view", "MiB/s", b["native"],
                           b["floor-fast"], b["tcfs-fast"])
            self.table.add(f"{mib(size)} sequential read, warm, full mount", "MiB/s", b["native"],
                           b["floor"], b["tcfs"], target=warm_target, note=direct)

            # Each entry read once after the kernel dropped every cache;
            # small ones several times a run, so that a run can be timed.
            count = max(1, min(8, p["cold_bytes"] // size))
            log(f"== {mib(size)} sequential read, cold (drop_caches before each of {count})")

            def cold(t, r, size=size, count=count):
                spent = 0.0
                for _ in range(count):
                    drop_caches()
                    # A cold read allocates page cache (twice through FUSE:
                    # the mount's and the store file's).
                    recycle_memory(a.work, 2 * size + (64 << 20))
                    spent += size / (1 << 20) / read_whole(paths[t], size)
                return count * size / (1 << 20) / spent

            b = best_of(a, list(paths), cold)
            note = "the floor holds the file in memory: its cold row is FUSE transport only"
            direct = f"floor with direct read opens: {Table.fmt(b['floor-direct'])} MiB/s"
            self.table.add(f"{mib(size)} sequential read, cold, fast view", "MiB/s", b["native"],
                           b["floor-fast"], b["tcfs-fast"], target=("native", 0.8), note=note)
            self.table.add(f"{mib(size)} sequential read, cold, full mount", "MiB/s", b["native"],
                           b["floor"], b["tcfs"], target=("native", 0.8), note=direct)
