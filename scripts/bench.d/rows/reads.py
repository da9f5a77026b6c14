"""The sequential-read rows: one big entry read whole, warm and cold."""

import os

from mounts import drop_caches
from params import log, name
from report import Table
from workloads import best_of, read_whole


class Reads:
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
