"""The scale rows: hits and the daemon's memory as the store grows, one
fresh daemon per store size, with the ls -l rows at ls_sizes."""

import os

from mounts import Tagcachefs, forget_all, open_fds, populate, proc_status, wait_idle
from params import ENTRY, FILLER, SEED, log, name
from workloads import best_of, hit_body, loop_paths, random_paths, run_procs, warm


class Scale:
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
            # The largest store also holds one big tag, for the tag-listing row.
            last = size == p["sizes"][-1]
            if last:
                specs.append(f"g:0:{p['tagged']}:{FILLER}:big")
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
                mem.update(self.ls(store, size + (p["tagged"] if last else 0), tc, hot))
            if last:
                self.ls_tag(store, size, tc, "big", p["tagged"])
            mem["hwm"] = proc_status(tc.pid)["VmHWM"]
            self.memory.append(mem)
            tc.stop()
            if last:
                self.store_walks(store, size + p["tagged"])
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
