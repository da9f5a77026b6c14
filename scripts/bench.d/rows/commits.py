"""The commit row: a 4 KiB entry written with two tags and an expiry."""

import os

from params import ENTRY, content, log, name
from workloads import best_of, commit_worker, diskcache_set_worker, plain_commit_worker, run_procs


class Commits:
    def commits(self):
        a, p = self.args, self.p
        log("== commit: 4 KiB entry with 2 tags and an expiry")
        data = content(7, ENTRY)
        tags = [f"g{i},all".encode() for i in range(100)]
        targets = ["native", "floor", "tcfs"] + (["diskcache"] if self.dc else [])

        def measure(t, r):
            if t == "diskcache":
                return run_procs(lambda k: diskcache_set_worker(self.dc, f"c{r}p{k}x", data), 1, p["seconds"])
            keys = os.path.join(self.roots[t], "keys")
            return run_procs(lambda k: commit_worker(keys, f"c{r}p{k}x", data, tags), 1, p["seconds"])

        b = best_of(a, targets, measure)
        # The commits must have landed, with their tags.
        probe = os.path.join(self.tc.fast, "keys", name("c0p0x", 3))
        with open(probe, "rb", buffering=0) as f:
            if f.read() != data:
                raise RuntimeError("a committed entry reads back wrong")
        if os.getxattr(os.path.join(self.tc.mnt, "keys", name("c0p0x", 3)), "user.tags") != b"all,g3":
            raise RuntimeError("a committed entry lost its tags")
        st = self.tc.stats()
        if st["commit_errors"]:
            raise RuntimeError(f"{st['commit_errors']} commit errors")
        self.table.add("commit 4 KiB + 2 tags + expiry (full mount)", "ops/s", b["native"], b["floor"],
                       b["tcfs"], b.get("diskcache"),
                       note="open(O_CREAT|O_TRUNC|O_WRONLY), fsetxattr ×2, write, close; "
                            "native: same calls on ext4 (no atomic publish); "
                            "diskcache: set(key, value, expire=3600, tag=...) — one tag, its limit")

    def put_commits(self):
        """The same commit through put/: the tags and expiry in the path,
        no SETXATTR."""
        a, p = self.args, self.p
        log("== commit through put/: 4 KiB entry with 2 tags and an expiry")
        data = content(7, ENTRY)
        targets = ["native", "floor", "tcfs"] + (["diskcache"] if self.dc else [])
        dirs = {t: os.path.join(self.roots[t], "keys") for t in ("native", "floor")}

        def measure(t, r):
            if t == "diskcache":
                return run_procs(lambda k: diskcache_set_worker(self.dc, f"q{r}p{k}x", data), 1, p["seconds"])

            def path(n):
                if t == "tcfs":
                    return os.path.join(self.tc.mnt, "put", f"tags=g{n % 100},all", "expire=3600",
                                        name(f"q{r}p0x", n))
                return os.path.join(dirs[t], name(f"q{r}p0x", n))

            return run_procs(lambda k: plain_commit_worker(path, data), 1, p["seconds"])

        b = best_of(a, targets, measure)
        probe = os.path.join(self.tc.mnt, "keys", name("q0p0x", 3))
        with open(probe, "rb", buffering=0) as f:
            if f.read() != data:
                raise RuntimeError("an entry committed through put/ reads back wrong")
        if os.getxattr(probe, "user.tags") != b"all,g3":
            raise RuntimeError("an entry committed through put/ lost its tags")
        self.table.add("commit 4 KiB + 2 tags + expiry through put/", "ops/s", b["native"], b["floor"],
                       b["tcfs"], b.get("diskcache"), ("floor", 0.8),
                       note="open(put/tags=…/expire=3600/NAME, O_CREAT|O_TRUNC|O_WRONLY), write, close; "
                            "native and floor: the same three calls on keys/NAME; diskcache: set(...)")

