#!/usr/bin/env python3
"""The tagcache README's blog example on a tagcachefs mount, through the
Python package (clients/python; `pip install ./clients/python`, or run from
a checkout as it is: the package's source is then found beside this file).

    python3 examples/tagcache_client.py MOUNTPOINT [READ_MOUNT]

(READ_MOUNT: the daemon's --read-mount view, to read hits there.)

`python3 examples/tagcache_client.py --race MOUNTPOINT KEY RECORD` is one
contender of a single-flight test: it waits for a line on stdin (so that a
test can release several processes together), then gets KEY with a compute
step that sleeps 1 s and appends a line to RECORD, and prints
"<source> <value>".
"""

import os
import sys
import time

try:
    from tagcachefs import Cache, JSONSerializer
except ImportError:
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "clients", "python", "src"))
    from tagcachefs import Cache, JSONSerializer


def blog_example(mnt, read_mnt=None):
    cache = Cache(mnt, read_mount=read_mnt, serializer=JSONSerializer())
    runs = []

    @cache("blog-home", expire=3600 * 24 * 7, tags=("blog-new", "bio"))
    def home_page_content(cache_param):
        runs.append(1)
        return {"bio": {"name": "Huang junwen"}, "recent_blogs": ["tagcache"], "run": len(runs)}

    first = home_page_content.lookup()
    assert first.source == "computed" and first.value["run"] == 1, first
    assert home_page_content.lookup() == (first.value, "hit")

    # The bio changed: every page showing it goes.
    assert cache.invalidate_tag("bio")
    assert cache.get("blog-home") is None
    again = home_page_content.lookup()
    assert again.source == "computed" and again.value["run"] == 2, again

    # One page alone; its content stays under stale/ until cleanup.
    assert cache.invalidate_key("blog-home")
    assert cache.get("blog-home") is None
    print("tagcache_client.py: the blog example held")


def race(mnt, key, record):
    sys.stdin.readline()  # released together with the others

    def compute():
        time.sleep(1)
        with open(record, "a") as f:
            f.write(f"{os.getpid()}\n")
        return f"computed by {os.getpid()} at {time.time():.6f}"

    got = Cache(mnt).lookup(key, compute, wait=30)
    print(got.source, got.value.decode(), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--race":
        race(*sys.argv[2:])
    elif len(sys.argv) in (2, 3):
        blog_example(*sys.argv[1:])
    else:
        sys.exit(__doc__)
