"""A process using the tagcache library on a store, for the tests in
tests/tagcache_library.rs. The library itself comes from the directory in
$TAGCACHE_LIBRARY (it is not part of this project).

    client.py STORE NS get KEY [--tags a,b] [--expire N] [--hold FILE SECONDS]
        prints {"value": ..., "generated": true|false}; --hold: the content
        function creates FILE, then sleeps SECONDS (holding the entry's
        flock when it regenerates an expired entry)
    client.py STORE NS invalidate-tag TAG
    client.py STORE NS invalidate-key KEY
    client.py STORE NS cleanup        prints [keys unlinked, tag links unlinked]
    client.py STORE NS paths KEY      prints the key file's path

NS is k (the library's k:/t:) or key (key:/tag:).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.environ["TAGCACHE_LIBRARY"])

from tagcache import Cache  # noqa: E402
from tagcache.serialize import JSONSerializer  # noqa: E402


def main():
    store, ns, cmd, *rest = sys.argv[1:]
    cache = Cache(store, serializer=JSONSerializer())
    if ns == "key":
        cache.key_ns, cache.tag_ns = "key", "tag"
    if cmd == "get":
        key = rest[0]
        opts = dict(zip(rest[1::2], rest[2::2]))
        tags = [t for t in opts.get("--tags", "").split(",") if t]
        expire = int(opts["--expire"]) if "--expire" in opts else None
        hold = opts.get("--hold")
        generated = []

        @cache(key, expire=expire, tags=tags)
        def content(param):
            generated.append(True)
            if hold:
                path, seconds = hold.split(":")
                open(path, "w").close()
                time.sleep(float(seconds))
            return {"key": key, "by": "library", "pid": os.getpid()}

        value = content()
        print(json.dumps({"value": value, "generated": bool(generated)}))
    elif cmd == "invalidate-tag":
        cache.invalidate_tag(rest[0])
    elif cmd == "invalidate-key":
        cache.invalidate_key(rest[0])
    elif cmd == "cleanup":
        print(json.dumps(list(cache.cleanup())))
    elif cmd == "paths":
        print(cache.key_to_path(rest[0]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
