"""The file systems a run mounts and what it asks of them: the tagcachefs
daemon (full mount and fast view), the floor (examples/floorfs.rs), stores
filled by examples/populate.rs, unmounting at exit, the kernel's caches,
and the daemon's pid, memory, descriptors and CPU from /proc."""

import json
import os
import re
import select
import subprocess
import time

perf = time.perf_counter


class Mounts:
    """Every mount this run made, unmounted at exit whatever happens."""

    def __init__(self):
        self.daemons = []  # (mount points, Popen or pid)

    def add(self, points, proc):
        self.daemons.append((points, proc))

    def stop(self, points):
        for mp in points:
            if is_mounted(mp):
                subprocess.run(["umount", mp], stderr=subprocess.DEVNULL)
        for mp in points:
            if is_mounted(mp):
                subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)
        keep = []
        for pts, proc in self.daemons:
            if pts is points or pts == points:
                wait_gone(proc)
            else:
                keep.append((pts, proc))
        self.daemons = keep

    def stop_all(self):
        for pts, _ in list(self.daemons):
            self.stop(pts)


MOUNTS = Mounts()


def mounted_points():
    out = set()
    with open("/proc/mounts") as f:
        for line in f:
            mp = line.split()[1]
            out.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), mp))
    return out


def is_mounted(mp):
    return os.path.realpath(mp) in mounted_points()


def wait_gone(proc, timeout=20):
    end = perf() + timeout
    if isinstance(proc, subprocess.Popen):
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
        return
    while perf() < end and os.path.exists(f"/proc/{proc}"):
        try:
            with open(f"/proc/{proc}/stat") as f:
                if f.read().split(") ")[1].startswith("Z"):
                    return
        except OSError:
            return
        time.sleep(0.05)


def daemon_pid(store):
    """The serving tagcachefs process of `store` (found by its command line)."""
    store = os.path.realpath(store)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"tagcachefs") and store.encode() in argv:
            return int(pid)
    raise RuntimeError(f"no tagcachefs process serves {store}")


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid, quiet=0.6, timeout=600):
    """Waits until the daemon stops using CPU (its mount-time sweep is done);
    returns the CPU seconds it used meanwhile."""
    start = last = cpu_seconds(pid)
    still = perf()
    end = perf() + timeout
    while perf() < end:
        time.sleep(0.2)
        now = cpu_seconds(pid)
        if now - last > 0.02:
            last, still = now, perf()
        elif perf() - still >= quiet:
            break
    return last - start


class Tagcachefs:
    def __init__(self, args, store, tag, env=None, log_file=None, extra=()):
        self.store = store
        self.mnt = os.path.join(args.work, f"{tag}-mnt")
        self.fast = os.path.join(args.work, f"{tag}-fast")
        os.makedirs(self.mnt, exist_ok=True)
        os.makedirs(self.fast, exist_ok=True)
        cmd = [
            os.path.join(args.bin, "tagcachefs"),
            store,
            self.mnt,
            "--read-mount",
            self.fast,
            "--cache-timeout",
            str(args.cache_timeout),
            "--cleanup-interval",
            "0",
        ]
        if log_file:
            cmd += ["--log-file", log_file]
        cmd += args.daemon_args.split() + list(extra)
        self.points = [self.mnt, self.fast]
        # The serving process logs its INIT to the caller's stderr before it
        # detaches: keep that out of the report.
        with open(log_file or os.devnull, "ab") as err:
            subprocess.run(cmd, check=True, env=env, stderr=err)
        self.pid = daemon_pid(store)
        MOUNTS.add(self.points, self.pid)

    def stats(self):
        with open(os.path.join(self.mnt, ".stats")) as f:
            return json.load(f)

    def stop(self):
        MOUNTS.stop(self.points)


class Floor:
    def __init__(self, args, tag, fast, populate, env=None, log_file=None):
        self.mnt = os.path.join(args.work, f"{tag}-mnt")
        os.makedirs(self.mnt, exist_ok=True)
        cmd = [
            os.path.join(args.bin, "examples", "floorfs"),
            self.mnt,
            "--cache-timeout",
            str(args.cache_timeout),
        ]
        if fast == "direct":
            cmd.append("--direct-reads")
        elif fast:
            cmd.append("--fast")
        for spec in populate:
            cmd += ["--populate", spec]
        err = open(log_file or os.path.join(args.work, f"{tag}.log"), "ab")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=err, env=env, start_new_session=True
        )
        err.close()
        self.points = [self.mnt]
        MOUNTS.add(self.points, self.proc)
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            raise RuntimeError(f"floorfs on {self.mnt} did not start")

    def stop(self):
        MOUNTS.stop(self.points)


def populate(args, store, specs):
    t = perf()
    subprocess.run(
        [os.path.join(args.bin, "examples", "populate"), store, *specs],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    return perf() - t


def drop_caches(what="3"):
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write(what)


def forget_all(*daemons):
    """Makes the kernel drop its cached names and inodes (so it sends FORGET
    for every node), and waits until the daemons hold none: each row then
    starts from the same cold kernel caches."""
    drop_caches("2")
    end = perf() + 10
    for d in daemons:
        while perf() < end and d.stats()["kernel_nodes"] > 10:
            time.sleep(0.05)


SCRATCH_CHUNK = b"\0" * (1 << 20)


def recycle_memory(work, nbytes):
    """Writes and removes a scratch file of `nbytes` (untimed, before a
    timed run that allocates memory: page cache or a floor's buffers).

    On a virtual machine with free page reporting (virtio-balloon), memory
    the guest freed a few seconds ago has gone back to the host, and the
    first touch of each page costs a host fault: measured here, a 256 MiB
    native write ran at ~330 MiB/s on such memory and ~4 GiB/s on pages
    freed just before. Writing and unlinking a file of the size the run
    needs leaves that much recently freed memory for it, whichever path it
    measures."""
    path = os.path.join(work, "recycle.tmp")
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
    try:
        for _ in range(-(-nbytes // len(SCRATCH_CHUNK))):
            os.write(fd, SCRATCH_CHUNK)
    finally:
        os.close(fd)
        os.unlink(path)


def cleanup_store(args, store):
    """`tagcachefs cleanup STORE`: reclaims what the mount invalidated."""
    subprocess.run([os.path.join(args.bin, "tagcachefs"), "cleanup", store], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
