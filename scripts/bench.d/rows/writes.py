"""The sequential-write rows: entries of 1, 64 and 256 MiB written whole
(open, 1 MiB writes, close) through keys/ and put/ of the full mount, by 1
and by 4 processes at once, against the same writes natively, into the
floor and into diskcache."""

import os

from mounts import cleanup_store, recycle_memory
from params import content, log, mib, name
from workloads import best_of, check_written, open_diskcache, run_once, write_entry

CHUNK = 1 << 20
PUT = "put/expire=3600/tags=big"


class Writes:
    def big_writes(self):
        a, p = self.args, self.p
        chunk = content(11, CHUNK)
        targets = ["native", "floor", "tcfs", "tcfs-put"] + (["diskcache"] if self.dc else [])
        dirs = {
            "native": os.path.join(self.native, "keys"),
            "floor": os.path.join(self.floor.mnt, "keys"),
            "tcfs": os.path.join(self.tc.mnt, "keys"),
            "tcfs-put": os.path.join(self.tc.mnt, PUT),
        }
        for size in p["big_sizes"]:
            for nproc in (1, 4):
                # Small entries are written several to a run, so that a run
                # lasts long enough to time.
                count = max(1, p["write_bytes"] // size)
                log(f"== {mib(size)} sequential write, {nproc} writer(s), {count} entr(y/ies) each")

                def names(r, k, size=size, count=count):
                    return [name(f"w{size >> 20}m{r}p{k}x", j) for j in range(count)]

                def measure(t, r, size=size, nproc=nproc, count=count, names=names):
                    # Untimed: nothing dirty, and recently freed memory for
                    # the run to allocate (see recycle_memory).
                    os.sync()
                    recycle_memory(a.work, nproc * size * count + (64 << 20))

                    if t == "diskcache":
                        def f(k):
                            cache = open_diskcache(self.dc)
                            value = chunk * (size // CHUNK)

                            def run():
                                for n in names(r, k):
                                    cache.set(n, value)
                                return size * count
                            return run
                    else:
                        def f(k):
                            paths = [os.path.join(dirs[t], n) for n in names(r, k)]
                            return lambda: sum(write_entry(path, chunk, size) for path in paths)

                    rate = run_once(f, nproc)
                    self.check_and_remove(t, r, nproc, names, chunk, size)
                    return rate

                b = best_of(a, targets, measure)
                writers = "1 writer" if nproc == 1 else f"{nproc} writers"
                target = [("native", 0.6), ("floor", 0.9)] if size == 256 << 20 else None
                many = f"{count} entries per writer per run; " if count > 1 else ""
                self.table.add(f"{mib(size)} sequential write, keys/, {writers}", "MiB/s", b["native"],
                               b["floor"], b["tcfs"], b.get("diskcache"), target,
                               note=f"{many}open(O_CREAT|O_TRUNC|O_WRONLY) of a new name, "
                                    "1 MiB os.write()s, close (the commit); diskcache: set(key, bytes)")
                self.table.add(f"{mib(size)} sequential write, put/, {writers}", "MiB/s", b["native"],
                               b["floor"], b["tcfs-put"], None, target,
                               note=f"the same writes to {PUT}/NAME (floor: keys/NAME)")
        if self.tc.stats()["commit_errors"]:
            raise RuntimeError("commit errors while writing big entries")

    def check_and_remove(self, t, r, nproc, names, chunk, size):
        """Untimed, after a run: the first run's entries read back whole
        (put/ ones with their tag); then every entry of the run goes, so
        that runs do not fill the disk or the page cache."""
        if t == "diskcache":
            cache = open_diskcache(self.dc)
            if r == 0 and len(cache.get(names(r, 0)[0])) != size:
                raise RuntimeError("diskcache: a big value reads back wrong")
            for k in range(nproc):
                for n in names(r, k):
                    cache.delete(n)
            cache.close()
            return
        keys = os.path.join(self.roots["tcfs" if t == "tcfs-put" else t], "keys")
        if r == 0:
            first = os.path.join(keys, names(r, 0)[0])
            check_written(first, chunk, size)
            if t == "tcfs-put" and os.getxattr(first, "user.tags") != b"big":
                raise RuntimeError(f"{first}: written through put/ without its tag")
        for k in range(nproc):
            for n in names(r, k):
                os.unlink(os.path.join(keys, n))
        if t in ("tcfs", "tcfs-put"):
            cleanup_store(self.args, self.store)
