"""The rmdir rows: removing a tag's directory invalidates its entries,
with none of them cached by the kernel and with all of them cached."""

import os
import subprocess
import time

from mounts import forget_all
from params import ENTRY, log, name
from workloads import open_diskcache, opens, warm

perf = time.perf_counter


class Rmdirs:
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
