"""The durable-mode row: commits through a `--durable` mount (each version
fsynced before it is published, its directories after) against the same
commits through the default mount of the same run."""

import os

from mounts import Tagcachefs
from params import ENTRY, content, log
from workloads import new_name_commits


class Durable:
    def durable(self):
        a, p = self.args, self.p
        log("== commits through a --durable mount")
        store = os.path.join(a.work, "dstore")
        os.makedirs(store, exist_ok=True)
        tc = Tagcachefs(a, store, "durable", extra=["--durable"])
        data = content(4, ENTRY)
        try:
            roots = {"default": self.tc.mnt, "durable": tc.mnt}
            b = new_name_commits(a, roots, "d", data, p["seconds"], batch=10)
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
