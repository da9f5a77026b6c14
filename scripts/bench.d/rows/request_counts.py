"""FUSE requests per operation, counted from fuser's debug log (the
table below the rows)."""

import os
import re
import time

from mounts import Floor, Tagcachefs, populate, wait_idle
from params import ENTRY, log, name
from workloads import miss_body, warm

perf = time.perf_counter


class RequestCounts:
    def request_counts(self):
        a, p = self.args, self.p
        n = p["probe_ops"]
        log("== FUSE requests per operation (fuser debug log)")
        env = dict(os.environ, RUST_LOG="fuser=debug")
        logs = {}
        store = os.path.join(a.work, "probe-store")
        populate(a, store, [f"k:0:{n}:{ENTRY}"])
        logs["tcfs"] = os.path.join(a.work, "probe-tc.log")
        tc = Tagcachefs(a, store, "probe", env=env, log_file=logs["tcfs"])
        wait_idle(tc.pid)
        logs["tcfs-fast"] = logs["tcfs"]
        floors = []
        try:
            for tag, fast in (("floor", False), ("floor-fast", True), ("floor-direct", "direct")):
                logs[tag] = os.path.join(a.work, f"probe-{tag}.log")
                floors.append(Floor(a, f"probe{tag}", fast, [f"k:0:{n}:{ENTRY}"], env=env,
                                    log_file=logs[tag]))
            roots = {"floor": floors[0].mnt, "floor-fast": floors[1].mnt,
                     "floor-direct": floors[2].mnt, "tcfs": tc.mnt, "tcfs-fast": tc.fast}
            pat = re.compile(rb"FUSE\(\s*\d+\) ino 0x[0-9a-f]+ ([A-Z_]+)")

            def settle(path):
                """Waits until the log stops growing (RELEASE and FORGET
                arrive after the call that caused them returns)."""
                size, still = os.path.getsize(path), perf()
                end = perf() + 3
                while perf() < end and perf() - still < 0.2:
                    time.sleep(0.05)
                    now = os.path.getsize(path)
                    if now != size:
                        size, still = now, perf()

            def count(t, fn, ops):
                settle(logs[t])
                start = os.path.getsize(logs[t])
                fn()
                settle(logs[t])
                with open(logs[t], "rb") as f:
                    f.seek(start)
                    found = {}
                    for m in pat.finditer(f.read()):
                        found[m.group(1).decode()] = found.get(m.group(1).decode(), 0) + 1
                return {k: v / ops for k, v in sorted(found.items())}

            for t, root in roots.items():
                paths = [os.fsencode(os.path.join(root, "keys", name("k", i))) for i in range(n)]
                absent = [os.fsencode(os.path.join(root, "keys", name("m", i))) for i in range(n)]
                fresh = [os.fsencode(os.path.join(root, "keys", name("z", i))) for i in range(n)]
                warm(paths, ENTRY)
                miss_body(absent)
                res = {
                    "hit (warm)": count(t, lambda: warm(paths, ENTRY), n),
                    "miss, seen before": count(t, lambda: miss_body(absent), n),
                    "miss, first sight": count(t, lambda: miss_body(fresh), n),
                }
                if t in ("floor", "tcfs"):
                    def commit_all(root=root):
                        for i in range(n):
                            fd = os.open(os.path.join(root, "keys", name("w", i)),
                                         os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
                            os.setxattr(fd, "user.tags", b"a,b")
                            os.setxattr(fd, "user.expire", b"3600")
                            os.write(fd, b"x" * ENTRY)
                            os.close(fd)
                    res["commit"] = count(t, commit_all, n)
                self.requests[t] = res
        finally:
            for f in floors:
                f.stop()
            tc.stop()
