"""The report: the table of rows (formatting, the tcfs/native and tcfs/floor
ratios, the targets met or missed), the text around it (header, notes,
daemon memory, FUSE requests per operation), and the description of the
machine and software it ran on."""

import os
import platform
import subprocess
import time

from mounts import open_fds, proc_status


class Table:
    def __init__(self):
        self.rows = []

    def add(self, workload, unit, native=None, floor=None, tcfs=None, dc=None, target=None, note=""):
        self.rows.append(
            dict(
                workload=workload,
                unit=unit,
                native=native,
                floor=floor,
                tagcachefs=tcfs,
                diskcache=dc,
                target=target,
                note=note,
            )
        )

    @staticmethod
    def fmt(v):
        if v is None:
            return "—"
        if v >= 100_000:
            return f"{v / 1000:,.0f}k"
        if v >= 10_000:
            return f"{v / 1000:,.1f}k"
        if v >= 100:
            return f"{v:,.0f}"
        return f"{v:,.1f}"

    @staticmethod
    def ratio(a, b):
        return a / b if a is not None and b else None

    def verdict(self, row):
        """The row's target(s) — (kind, ratio) or a list of them — met or not."""
        t = row["target"]
        if not t:
            return ""
        if isinstance(t, list):
            return "; ".join(self.verdict(dict(row, target=one)) for one in t)
        kind, want = t
        got = {
            "native": self.ratio(row["tagcachefs"], row["native"]),
            "floor": self.ratio(row["tagcachefs"], row["floor"]),
            "flat": row.get("flat"),
        }[kind]
        if got is None:
            return f"≥{want:.2f}× {kind}: n/a"
        mark = "met" if got >= want else "MISSED"
        if row.get("incomplete"):
            mark = f"MISSED ({row['incomplete']})"
        return f"≥{want:.2f}× {kind}: {mark}"

    def render(self):
        head = ["workload", "unit", "native", "floor", "tagcachefs", "diskcache",
                "tcfs/native", "tcfs/floor", "target"]
        lines = []
        for r in self.rows:
            rn = self.ratio(r["tagcachefs"], r["native"])
            rf = self.ratio(r["tagcachefs"], r["floor"])
            lines.append([
                r["workload"], r["unit"], self.fmt(r["native"]), self.fmt(r["floor"]),
                self.fmt(r["tagcachefs"]), self.fmt(r["diskcache"]),
                f"{rn:.2f}" if rn is not None else "—",
                f"{rf:.2f}" if rf is not None else "—",
                self.verdict(r),
            ])
        widths = [max([len(h)] + [len(l[i]) for l in lines]) for i, h in enumerate(head)]
        def row(cells):
            out = []
            for i, c in enumerate(cells):
                out.append(c.ljust(widths[i]) if i in (0, 1, 8) else c.rjust(widths[i]))
            return "| " + " | ".join(out) + " |"
        text = [row(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        text += [row(l) for l in lines]
        notes = [f"- {r['workload']}: {r['note']}" for r in self.rows if r["note"]]
        return "\n".join(text), notes


class Report:
    """The report text of a Bench: its table, the notes of its rows, and the
    memory and request tables its rows filled in."""

    def report(self, started):
        a = self.args
        lines = []
        env = environment(a)
        lines.append("tagcachefs benchmark" + (" (--quick)" if a.quick else ""))
        for k, v in env.items():
            lines.append(f"  {k}: {v}")
        lines.append(f"  load average (1 min) when the run started: {self.load_start:.2f}")
        lines.append(f"  best of {a.runs} interleaved runs of {self.p['seconds']} s; "
                     f"--cache-timeout {a.cache_timeout} {a.daemon_args}; client: Python os.open/os.read/os.close; "
                     "2 processes = two forked processes (not threads: the GIL)")
        lines.append("")
        text, notes = self.table.render()
        lines.append(text)
        lines.append("")
        lines.extend(notes)
        peak = proc_status(self.tc.pid)["VmHWM"] if hasattr(self, "tc") else None
        lines.append("")
        if peak:
            lines.append(f"daemon peak RSS (VmHWM), main run: {peak / 2**20:.1f} MiB "
                         f"(right after mount: {self.tc_rss0['VmRSS'] / 2**20:.1f} MiB; "
                         f"mount-time sweep used {self.tc_idle_cpu:.2f} s of CPU; "
                         f"{open_fds(self.tc.pid):,} open descriptors at the end)")
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        lines.append(f"RLIMIT_NOFILE of the daemons: {soft:,} (the daemon holds no descriptor per "
                     "node: its read pool and pins are bounded)")
        if self.memory:
            lines.append("")
            lines.append("daemon memory by store size (VmRSS; kernel_nodes from .stats, both mounts):")
            lines.append("| store entries | mount-time sweep CPU | RSS at mount | RSS, hot set read on the full mount "
                         "| kernel nodes | open fds | bytes/node | RSS after ls -l of all | kernel nodes | open fds "
                         "| bytes/node | peak (VmHWM) |")
            lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
            for m in self.memory:
                per = (m["rss_hot"] - m["rss_mount"]) / max(1, m["nodes_hot"] - m["nodes_mount"])
                if "rss_ls" in m:
                    per_ls = (m["rss_ls"] - m["rss_mount"]) / max(1, m["nodes_ls"] - m["nodes_mount"])
                    ls_cells = (f"{m['rss_ls'] / 2**20:.1f} MiB | {m['nodes_ls']:,} | {m['fds_ls']:,} "
                                f"| {per_ls:,.0f}")
                else:
                    ls_cells = "— | — | — | —"
                lines.append(f"| {m['size']:,} | {m['sweep_cpu']:.2f} s | {m['rss_mount'] / 2**20:.1f} MiB | "
                             f"{m['rss_hot'] / 2**20:.1f} MiB | {m['nodes_hot']:,} | {m['fds_hot']:,} | {per:,.0f} | "
                             f"{ls_cells} | "
                             f"{m['hwm'] / 2**20:.1f} MiB |")
        if self.requests:
            lines.append("")
            lines.append("FUSE requests the daemon received per operation (fuser debug log, "
                         f"{self.p['probe_ops']} ops each):")
            lines.append("| path | workload | requests/op | by opcode |")
            lines.append("|---|---|---|---|")
            for t, res in self.requests.items():
                for wl, ops in res.items():
                    total = sum(ops.values())
                    by = ", ".join(f"{k} {v:.2f}" for k, v in ops.items()) or "none"
                    lines.append(f"| {t} | {wl} | {total:.2f} | {by} |")
        lines.extend(self.extra)
        lines.append("")
        lines.append(f"total time {time.monotonic() - started:.0f} s")
        return "\n".join(lines)


def environment(a):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    fs = "?"
    best = ""
    with open("/proc/mounts") as f:
        for line in f:
            dev_, mp, typ = line.split()[:3]
            if a.work.startswith(mp.rstrip("/") + "/") and len(mp) >= len(best):
                best, fs = mp, f"{typ} ({dev_} on {mp})"
    rev = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                         cwd=os.getcwd()).stdout.strip()
    dc = "not installed"
    if a.diskcache:
        import diskcache

        dc = diskcache.__version__
    return {
        "machine": f"{os.cpu_count()} CPUs, {cpu}, kernel {platform.release()}, "
                   f"load average now {os.getloadavg()[0]:.2f}",
        "file system": f"{fs}, holding the stores, mounts and native directories",
        "tagcachefs": rev or "?",
        "python": f"{platform.python_version()}, diskcache {dc}",
    }
