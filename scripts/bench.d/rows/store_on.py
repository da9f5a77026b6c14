"""The store-on rows (--store-on DIR, opt-in): the same hits and commits on
a store in DIR (a GlusterFS client mount, say) and on the run's local
store, in the same run, with their ratio. Native reads of plain files in
DIR and beside the local store say what the file system itself costs."""

import os
import shutil

from mounts import Tagcachefs, forget_all, populate
from params import ENTRY, SEED, content, log, name
from report import Table
from workloads import best_of, check_content, commit_worker, hit_body, loop_paths, random_paths, run_procs, warm

# The commit row's entry and tags (rows/commits.py).
COMMIT_DATA = content(7, ENTRY)
COMMIT_TAGS = [f"g{i},all".encode() for i in range(100)]


class StoreOn:
    def store_on(self):
        a = self.args
        top = os.path.join(os.path.realpath(a.store_on), f"tagcachefs-bench.{os.getpid()}")
        os.makedirs(top)
        self.there = None
        try:
            self._store_on(top)
        finally:
            if self.there:
                self.there.stop()
            shutil.rmtree(top, ignore_errors=True)

    def _store_on(self, top):
        a, p = self.args, self.p
        log(f"== store on {a.store_on}: {p['hot']} entries of 4 KiB")
        store = os.path.join(top, "store")
        dt = populate(a, store, [f"k:0:{p['hot']}:{ENTRY}"])
        log(f"   populated the store there in {dt:.1f} s")
        there = self.there = Tagcachefs(a, store, "on")
        native = os.path.join(top, "native")
        os.makedirs(os.path.join(native, "keys"))
        for i in range(p["hot"]):
            with open(os.path.join(native, "keys", name("k", i)), "wb") as f:
                f.write(content(i, ENTRY))
        roots = {
            "native local": self.native,
            "native on": native,
            "fast local": self.tc.fast,
            "fast on": there.fast,
            "full local": self.tc.mnt,
            "full on": there.mnt,
        }
        for root in roots.values():
            check_content(root, "k", [0, 1, p["hot"] - 1], ENTRY)
        rows = []

        def hits(label, pair):
            forget_all(self.tc, there)
            for t in pair:
                warm([os.fsencode(os.path.join(roots[t], "keys", name("k", i))) for i in range(p["hot"])],
                     ENTRY)

            def measure(t, r):
                paths = random_paths(roots[t], "k", p["hot"], 0, SEED + r)
                return run_procs(lambda k: loop_paths(paths, hit_body), 1, p["seconds"])

            log(f"== {label}, local store and store on {a.store_on}")
            b = best_of(a, pair, measure)
            rows.append((label, "ops/s", b[pair[0]], b[pair[1]]))

        hits("4 KiB hit, native read (the file system alone)", ("native local", "native on"))
        hits("4 KiB hit, fast view", ("fast local", "fast on"))
        hits("4 KiB hit, full mount", ("full local", "full on"))

        log(f"== commit, local store and store on {a.store_on}")
        keys = {"local": os.path.join(self.tc.mnt, "keys"), "on": os.path.join(there.mnt, "keys")}
        b = best_of(a, ["local", "on"],
                    lambda t, r: run_procs(lambda k: commit_worker(keys[t], f"so{r}p{k}x", COMMIT_DATA, COMMIT_TAGS), 1, p["seconds"]))
        rows.append(("commit 4 KiB + 2 tags + expiry (full mount)", "ops/s", b["local"], b["on"]))
        st = there.stats()
        if st["commit_errors"]:
            raise RuntimeError(f"{st['commit_errors']} commit errors on the store in {a.store_on}")

        fs = "?"
        with open("/proc/mounts") as f:
            best = ""
            for line in f:
                dev_, mp, typ = line.split()[:3]
                if (top + "/").startswith(mp.rstrip("/") + "/") and len(mp) >= len(best):
                    best, fs = mp, f"{typ} ({dev_})"
        self.extra += [
            "",
            f"a store on {a.store_on}, {fs}, against the local store (same run, same "
            f"--cache-timeout {a.cache_timeout:g}, 1 process):",
            f"| workload | unit | local store | store on {a.store_on} | on / local |",
            "|---|---|---|---|---|",
        ]
        for label, unit, local, on in rows:
            self.extra.append(f"| {label} | {unit} | {Table.fmt(local)} | {Table.fmt(on)} | "
                              f"{on / local:.2f} |")
            self.store_on_rows.append(dict(workload=label, unit=unit, local=local, on=on,
                                           store_on=a.store_on, file_system=fs))
