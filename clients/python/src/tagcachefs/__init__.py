"""tagcachefs: the tagcache library's API over a tagcachefs mount.

    from tagcachefs import Cache

    cache = Cache("/mnt/cache")                       # or Cache() + cache.configure(...)

    @cache("blog-home", expire=3600 * 24 * 7, tags=("blog-new", "bio"))
    def home_page_content(cache_param):
        return {"bio": ..., "recent_blogs": [...]}

    content = home_page_content()                     # computed once, across processes
    cache.invalidate_tag("bio")                       # rmdir tags/bio

    cache.set("k", b"v", expire=60, tags=("t",))
    cache.get("k")                                    # b"v"
    cache.get_or_compute("k2", lambda: b"slow", tags=("t",))

Standard library only; Linux (it reads and writes the mount's files).
"""

from .cache import NEVER, Cache, CacheItem, CacheParam, Lookup, NotCache
from .serialize import JSONSerializer, PickleSerializer, Raw, Serializer

__version__ = "0.1.0"

__all__ = [
    "Cache",
    "CacheItem",
    "CacheParam",
    "JSONSerializer",
    "Lookup",
    "NEVER",
    "NotCache",
    "PickleSerializer",
    "Raw",
    "Serializer",
    "__version__",
]
