"""The tagcache library's API over a tagcachefs mount.

A mount point holds ``keys/<name>`` (the live entries), ``tags/<tag>/``,
``stale/<name>`` (expired or invalidated content, until cleanup), ``put/``
and ``.stats``. Everything here is a plain system call on those files:

- a hit is one read of ``keys/<key>``, on the read-only fast view when one
  is given, with ``os.open``/``os.read``: the buffered ``open()`` asks
  ``isatty()`` at every open, an ioctl the kernel always sends to the
  daemon, which turns a hit the kernel could serve alone into a round trip;
- a write opens ``put/expire=S/tags=a,b/<key>``, which is exactly a write of
  ``keys/<key>`` with that TTL and those tags set before any data; its
  ``close()`` is the commit and raises the commit's error;
- a miss takes the key's single-flight lock by opening that path with
  ``O_CREAT|O_EXCL`` (the same lock on every mount of the store): one
  process computes; the others serve ``stale/<key>`` if it is there, or
  wait for the value with a bounded back-off.

Names put/ cannot carry (a key starting with ``expire=`` or ``tags=``, a tag
list longer than a path component) are written through ``keys/<key>`` with
the tags and TTL set as xattrs on the writing descriptor, which is the same
thing.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import time
from typing import (
    Any,
    Callable,
    Dict,
    Generic,
    Iterable,
    List,
    NamedTuple,
    Optional,
    Set,
    Tuple,
    TypeVar,
    Union,
)

from .serialize import PickleSerializer, Raw, Serializer

__all__ = ["Cache", "CacheItem", "CacheParam", "Lookup", "NotCache", "NEVER"]

T = TypeVar("T")
Key = Union[str, bytes]
Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

#: The expiry time of an entry that never expires (2106-02-07).
NEVER = 2**32
#: The longest name or tag the mount takes, in bytes.
MAX_NAME = 125
#: The longest path component (put/'s tags=... holds the whole tag list).
_MAX_COMPONENT = 255
_PARAMS = (b"expire=", b"tags=")
_BLANKS = b" \t\n\x0c\r"
#: The first read of a hit: below malloc's mmap threshold, so a small hit
#: costs no mmap/munmap; later reads of big values take larger steps.
_FIRST_READ = 64 << 10
_READ = 1 << 20
#: The wait for another process's compute polls from 5 ms, doubling, to 250 ms.
FIRST_DELAY = 0.005
MAX_DELAY = 0.25
_RAW = Raw()


class NotCache(Exception):
    """Raised by a content function: ``value`` is returned to the caller and
    not cached (the same as ``cache_param.disable()``)."""

    def __init__(self, value: Any = None) -> None:
        super().__init__(value)
        self.value = value


class Lookup(NamedTuple):
    """What `Cache.lookup()` returns: the value, and where it came from."""

    value: Any
    #: ``"hit"``; ``"computed"`` (here, under the lock); ``"stale"`` (another
    #: process holds the lock: the last content from ``stale/``);
    #: ``"waited"`` (another process computed it while this one polled);
    #: ``"fallback"`` (the wait ran out: computed here without the lock).
    #: A ``"disabled"`` compute (``cache_param.disable()``, `NotCache`)
    #: is ``"computed"`` too.
    source: str


class CacheParam:
    """The parameter a decorated content function receives. Changing
    ``tags`` (a set) or ``expire`` changes what the result is cached with;
    ``disable()`` returns the result without caching it."""

    def __init__(self, expire: Optional[int], tags: Set[str]) -> None:
        self.expire = expire
        self.tags = tags
        self.disabled = False

    def disable(self) -> None:
        self.disabled = True


class _Produced(NamedTuple):
    value: Any
    store: bool
    tags: List[bytes]
    ttl: int


def _name(key: Key, what: str = "key") -> bytes:
    """`key` as the name the mount takes; ValueError if it takes none."""
    if isinstance(key, str):
        name = os.fsencode(key)
    elif isinstance(key, bytes):
        name = key
    else:
        raise TypeError(f"a {what} is str or bytes, not {type(key).__name__}")
    if not name or name in (b".", b".."):
        raise ValueError(f"not a {what}: {key!r} (empty, . or ..)")
    if b"/" in name or b"\0" in name:
        raise ValueError(f"not a {what}: {key!r} (holds / or NUL)")
    if len(name) > MAX_NAME:
        raise ValueError(f"a {what} is at most {MAX_NAME} bytes: {key!r}")
    return name


def _tag(tag: Key) -> bytes:
    name = _name(tag, "tag")
    if any(b in _BLANKS or b == ord(",") for b in name):
        raise ValueError(f"a tag holds no comma or blank: {tag!r}")
    return name


def _tags(tags: Optional[Iterable[Key]]) -> List[bytes]:
    if tags is None:
        return []
    if isinstance(tags, (str, bytes)):
        raise TypeError(f"tags is a collection of tags, not one string: {tags!r}")
    return sorted({_tag(t) for t in tags})


def _ttl(expire: Optional[int]) -> int:
    """`expire` as the mount's TTL: seconds, 0 = never."""
    if expire is None:
        return 0
    if isinstance(expire, bool) or not isinstance(expire, int):
        raise TypeError(f"expire is whole seconds (an int), not {type(expire).__name__}")
    if not 0 <= expire <= NEVER:
        raise ValueError(f"expire is 0 (never) to 2**32 seconds, not {expire}")
    return expire


def _read(path: bytes) -> Optional[bytes]:
    """The content of `path`, or None if there is no such file (not with the
    buffered open(): see the module's doc).

    A short read is the end of the file: the daemon answers every read with
    all the bytes asked for up to the version's end, and a page-cache read
    of a version (its own inode, never rewritten) stops only at its size.
    So a small hit is one read, with no second one to see the end."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        data = os.read(fd, _FIRST_READ)
        if len(data) < _FIRST_READ:
            return data
        parts = [data]
        while True:
            data = os.read(fd, _READ)
            parts.append(data)
            if len(data) < _READ:
                return b"".join(parts)
    finally:
        os.close(fd)


class Cache:
    """A tagcachefs mount, with the tagcache library's API and the usual
    ``get``/``set``/``delete`` of a disk cache.

    ``Cache(mountpoint, read_mount=None)``, or ``Cache()`` and then
    ``configure(mountpoint)`` as in tagcache. ``read_mount`` is the daemon's
    read-only fast view (``--read-mount``): hits are read there, where the
    kernel serves them without asking the daemon; locks, writes and
    invalidations always go through ``mountpoint``.

    Values: ``get``/``set``/``get_or_compute`` store bytes as they are (a
    str as UTF-8) unless ``serializer`` is given; the decorator pickles
    unless ``serializer`` is given, as tagcache does. ``serializer`` is any
    object with ``dumps``/``loads`` (`JSONSerializer`, `PickleSerializer`,
    or the ``json`` and ``pickle`` modules).

    ``binary``: the ``tagcachefs`` program ``cleanup()`` runs (default:
    ``$TAGCACHEFS_BIN``, else ``tagcachefs`` on ``PATH``).

    Keys and tags are str (or bytes) of 1 to 125 bytes without ``/`` or NUL,
    and not ``.`` or ``..``; a tag has no comma or blank either. ``expire``
    is whole seconds; ``None`` or 0 means never (as in tagcache). Each
    ``set`` replaces the entry's content, tags and expiry together.

    Every method is a few system calls on the mount and keeps no state:
    one `Cache` can be shared by threads, and processes need no
    coordination beyond the mount's.
    """

    def __init__(
        self,
        mountpoint: Optional[Path] = None,
        read_mount: Optional[Path] = None,
        serializer: Optional[Serializer] = None,
        *,
        binary: Optional[str] = None,
    ) -> None:
        self.serializer = serializer
        self.binary = binary
        self._mnt: Optional[bytes] = None
        self._hits = b""
        if mountpoint is not None:
            self.configure(mountpoint, read_mount)
        elif read_mount is not None:
            raise ValueError("read_mount without a mountpoint")

    def configure(self, mountpoint: Path, read_mount: Optional[Path] = None) -> None:
        """Sets the mount point (once), and the fast view if there is one."""
        if self._mnt is not None:
            raise RuntimeError("`configure` has been called")
        mnt = os.path.abspath(os.fsencode(mountpoint))
        fast = os.path.abspath(os.fsencode(read_mount)) if read_mount is not None else mnt
        for path, sub in ((mnt, b"keys"), (mnt, b"put"), (fast, b"keys")):
            if not os.path.isdir(os.path.join(path, sub)):
                raise ValueError(
                    f"{os.fsdecode(path)} is not a tagcachefs mount (no {os.fsdecode(sub)}/ in it)"
                )
        self._mnt = mnt
        self._hits = fast

    @property
    def mountpoint(self) -> str:
        return os.fsdecode(self._mount())

    @property
    def read_mount(self) -> Optional[str]:
        mnt = self._mount()
        return None if self._hits == mnt else os.fsdecode(self._hits)

    def __repr__(self) -> str:
        if self._mnt is None:
            return "Cache()"
        fast = f", read_mount={self.read_mount!r}" if self.read_mount else ""
        return f"Cache({self.mountpoint!r}{fast})"

    # -- the tagcache library's API ---------------------------------------

    def __call__(
        self,
        key: Key,
        expire: Optional[int] = None,
        tags: Optional[Iterable[str]] = None,
    ) -> Callable[[Callable[[CacheParam], T]], "CacheItem[T]"]:
        """The decorator: ``@cache('blog-home', expire=3600, tags=('bio',))``
        on a content function taking a `CacheParam`. Calling the result
        returns the cached value, or the function's (computed once across
        processes, under the key's lock)."""
        _name(key)
        _ttl(expire)
        tag_set = {os.fsdecode(t) for t in _tags(tags)}

        def decorate(content_fn: Callable[[CacheParam], T]) -> CacheItem[T]:
            if not callable(content_fn):
                raise TypeError("a content function is callable")
            return CacheItem(self, key, content_fn, expire, tag_set)

        return decorate

    def invalidate_tag(self, tag: Key) -> bool:
        """Invalidates every entry carrying `tag` (``rmdir tags/<tag>``);
        their content stays under ``stale/`` until cleanup. False if there
        was no such tag."""
        try:
            os.rmdir(os.path.join(self._mount(), b"tags", _tag(tag)))
        except FileNotFoundError:
            return False
        return True

    def invalidate_key(self, key: Key) -> bool:
        """Invalidates one entry (``rm keys/<key>``); its content stays under
        ``stale/`` until cleanup. False if it was not live."""
        try:
            os.unlink(os.path.join(self._mount(), b"keys", _name(key)))
        except FileNotFoundError:
            return False
        return True

    def cleanup(self) -> Optional[Dict[str, int]]:
        """Reclaims expired and invalidated entries: runs ``tagcachefs
        cleanup STORE`` on the store the mount's ``.stats`` names, and
        returns its report (``entries``, ``bytes``, ``tag_links``,
        ``tag_dirs``, ``tmp_files``).

        Does nothing and returns None when that store is not a directory
        here (the daemon runs elsewhere, in another mount namespace) or no
        ``tagcachefs`` program is found (``binary``, ``$TAGCACHEFS_BIN``,
        ``PATH``): the mount sweeps on its own every ``--cleanup-interval``
        (600 s by default), so nothing is lost but time. Raises
        RuntimeError if the cleanup runs and fails."""
        store = self.stats().get("store")
        program = self.binary or os.environ.get("TAGCACHEFS_BIN") or shutil.which("tagcachefs")
        if not isinstance(store, str) or not os.path.isdir(store) or not program:
            return None
        done = subprocess.run(
            [program, "cleanup", store, "--json"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{program} cleanup {store} failed ({done.returncode}): {done.stderr.strip()}"
            )
        report: Dict[str, int] = json.loads(done.stdout)
        return report

    # -- a disk cache's API -----------------------------------------------

    def get(self, key: Key, default: Any = None) -> Any:
        """The value of `key`, or `default` if it is not live."""
        data = _read(os.path.join(self._hit_dir(), _name(key)))
        if data is None:
            return default
        return self._serializer().loads(data)

    def set(
        self,
        key: Key,
        value: Any,
        expire: Optional[int] = None,
        tags: Iterable[Key] = (),
    ) -> None:
        """Stores `value` as `key` with `tags`, expiring in `expire` seconds
        (None or 0: never). Visible to every reader once this returns;
        raises the commit's error (OSError: ENOSPC, EIO, ESTALE if one of
        the tags was invalidated meanwhile)."""
        name, tag_list, ttl = _name(key), _tags(tags), _ttl(expire)
        data = self._data(self._serializer(), value)
        fd, preset = self._open(name, tag_list, ttl, exclusive=False)
        self._commit(fd, preset, data, tag_list, ttl, exclusive=False)

    def delete(self, key: Key) -> bool:
        """Removes `key` (it is invalidated: ``invalidate_key``). False if
        it was not live."""
        return self.invalidate_key(key)

    def get_or_compute(
        self,
        key: Key,
        compute: Callable[[], Any],
        expire: Optional[int] = None,
        tags: Iterable[Key] = (),
        wait: float = 30.0,
    ) -> Any:
        """The value of `key`, or ``compute()``'s, cached with `tags` and
        `expire`; see `lookup`."""
        return self.lookup(key, compute, expire, tags, wait).value

    def lookup(
        self,
        key: Key,
        compute: Callable[[], Any],
        expire: Optional[int] = None,
        tags: Iterable[Key] = (),
        wait: float = 30.0,
    ) -> Lookup:
        """`get_or_compute` that also says where the value came from.

        On a miss this process takes the key's single-flight lock (an
        ``O_CREAT|O_EXCL`` open, on every mount of the store) and computes;
        if ``compute()`` raises, nothing is cached and the lock is free for
        the next one. If another process holds the lock, this one serves
        the key's last content from ``stale/`` when there is one, else
        polls for the value (5 ms, doubling to 250 ms) for at most `wait`
        seconds; past that it computes the value itself and stores it
        without the lock (the last commit wins). Choose `wait` above your
        slowest compute."""
        name, tag_list, ttl = _name(key), _tags(tags), _ttl(expire)

        def produce() -> _Produced:
            return _Produced(compute(), True, tag_list, ttl)

        return self._lookup(name, tag_list, ttl, produce, wait, self._serializer())

    def stats(self) -> Dict[str, Any]:
        """The daemon's counters (``.stats``): hits, misses, commits,
        invalidations, ``store`` (the store's path)…"""
        data = _read(os.path.join(self._mount(), b".stats"))
        if data is None:
            raise FileNotFoundError(f"{self.mountpoint}/.stats: no such file")
        stats: Dict[str, Any] = json.loads(data)
        return stats

    def __contains__(self, key: Key) -> bool:
        try:
            os.close(os.open(os.path.join(self._hit_dir(), _name(key)), os.O_RDONLY | os.O_CLOEXEC))
        except FileNotFoundError:
            return False
        return True

    def __getitem__(self, key: Key) -> Any:
        missing = object()
        value = self.get(key, missing)
        if value is missing:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Key, value: Any) -> None:
        self.set(key, value)

    def __delitem__(self, key: Key) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def close(self) -> None:
        """Nothing to close (every call opens and closes its own files)."""

    def __enter__(self) -> "Cache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the mechanics -----------------------------------------------------

    def _mount(self) -> bytes:
        if self._mnt is None:
            raise RuntimeError("no mount point: call configure() first")
        return self._mnt

    def _hit_dir(self) -> bytes:
        self._mount()
        return os.path.join(self._hits, b"keys")

    def _serializer(self) -> Serializer:
        return self.serializer if self.serializer is not None else _RAW

    @staticmethod
    def _data(serializer: Serializer, value: Any) -> bytes:
        data = serializer.dumps(value)
        return data.encode() if isinstance(data, str) else bytes(data)

    @staticmethod
    def _as_read(serializer: Serializer, value: Any, data: bytes) -> Any:
        """A computed value as a hit would return it: without a serializer,
        the bytes stored (a str given is returned encoded)."""
        return data if isinstance(serializer, Raw) else value

    def _open(self, name: bytes, tags: List[bytes], ttl: int, exclusive: bool) -> Tuple[int, bool]:
        """Opens a new version of `name` for writing; `exclusive` takes the
        single-flight lock (FileExistsError while it is held or `name` is
        live). Returns the descriptor and whether `tags` and `ttl` are on it
        already (through put/) or are for `_commit` to set."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_EXCL if exclusive else os.O_TRUNC)
        mnt = self._mount()
        tag_dir = b"tags=" + b",".join(tags)
        if len(tag_dir) <= _MAX_COMPONENT and not name.startswith(_PARAMS):
            path = os.path.join(mnt, b"put", b"expire=%d" % ttl, tag_dir, name)
            return os.open(path, flags, 0o644), True
        return os.open(os.path.join(mnt, b"keys", name), flags, 0o644), False

    @staticmethod
    def _commit(
        fd: int,
        preset: bool,
        data: bytes,
        tags: List[bytes],
        ttl: int,
        exclusive: bool,
        opened_with: Optional[Tuple[List[bytes], int]] = None,
    ) -> None:
        """Writes `data` into the version open on `fd`, with `tags` and
        `ttl`, and closes `fd`: the close is the commit, and raises its
        error. `opened_with`: the tags and TTL `fd` was opened with, if they
        may differ from those."""
        touched = False
        try:
            if not preset or (opened_with is not None and opened_with != (tags, ttl)):
                touched = True
                os.setxattr(fd, "user.tags", b",".join(tags))
                os.setxattr(fd, "user.expire", b"%d" % ttl)
            elif not data:
                # Nothing will be written: a change that makes this close
                # commit. The mount takes "mtime = now" on a writer as
                # "expires its TTL from now".
                touched = True
                os.utime(fd)
            view = memoryview(data)
            while view:
                touched = True
                view = view[os.write(fd, view) :]
        except BaseException:
            Cache._abandon(fd, touched or not exclusive)
            raise
        os.close(fd)

    @staticmethod
    def _abandon(fd: int, touched: bool) -> None:
        """Closes a writing descriptor whose version must not become live.
        An untouched O_EXCL one commits nothing at close; any other commits
        what it holds, so it is emptied and given an expiry in the past
        first: the entry it replaces is invalidated, and nothing partial is
        ever live."""
        try:
            if touched:
                os.ftruncate(fd, 0)
                os.utime(fd, (1, 1))
        except OSError:
            pass
        finally:
            try:
                os.close(fd)
            except OSError:
                pass

    def _stale(self, name: bytes, serializer: Serializer) -> Tuple[bool, Any]:
        data = _read(os.path.join(self._mount(), b"stale", name))
        if data is None:
            return False, None
        try:
            return True, serializer.loads(data)
        except Exception:
            # Only an optimisation: content that does not load is not served.
            return False, None

    def _lookup(
        self,
        name: bytes,
        tags: List[bytes],
        ttl: int,
        produce: Callable[[], _Produced],
        wait: float,
        serializer: Serializer,
    ) -> Lookup:
        """Get-or-compute. `produce()` computes the value and says whether
        to store it and with which tags and TTL (a decorated function can
        change them); `tags` and `ttl` are those known before it runs."""
        hit = os.path.join(self._hit_dir(), name)
        deadline: Optional[float] = None
        delay = FIRST_DELAY
        while True:
            data = _read(hit)
            if data is not None:
                return Lookup(serializer.loads(data), "hit" if deadline is None else "waited")
            try:
                fd, preset = self._open(name, tags, ttl, exclusive=True)
            except FileExistsError:
                pass
            else:
                try:
                    made = produce()
                    data = self._data(serializer, made.value) if made.store else b""
                except BaseException:
                    os.close(fd)  # nothing written: nothing committed, lock released
                    raise
                if not made.store:
                    os.close(fd)
                    return Lookup(made.value, "computed")
                self._commit(fd, preset, data, made.tags, made.ttl, True, (tags, ttl))
                return Lookup(self._as_read(serializer, made.value, data), "computed")
            # Another process holds the lock, or committed just now.
            if deadline is None:
                data = _read(hit)
                if data is not None:
                    return Lookup(serializer.loads(data), "hit")
                found, value = self._stale(name, serializer)
                if found:
                    return Lookup(value, "stale")
                deadline = time.monotonic() + wait
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(delay, left))
            delay = min(delay * 2, MAX_DELAY)
        made = produce()
        if not made.store:
            return Lookup(made.value, "fallback")
        data = self._data(serializer, made.value)
        fd, preset = self._open(name, made.tags, made.ttl, exclusive=False)
        self._commit(fd, preset, data, made.tags, made.ttl, exclusive=False)
        return Lookup(self._as_read(serializer, made.value, data), "fallback")


class CacheItem(Generic[T]):
    """A decorated content function: calling it returns the cached value, or
    the function's result, computed under the key's single-flight lock and
    cached with the tags and expiry its `CacheParam` ends with."""

    __name__: str  # the content function's, as functools.wraps gives

    def __init__(
        self,
        cache: Cache,
        key: Key,
        content_fn: Callable[[CacheParam], T],
        expire: Optional[int],
        tags: Set[str],
        wait: float = 30.0,
    ) -> None:
        self.cache = cache
        self.key = key
        self.content_fn = content_fn
        self.expire = expire
        self.tags = tags
        self.wait = wait
        functools.update_wrapper(self, content_fn)

    def __call__(self) -> T:
        value: T = self.lookup().value
        return value

    def lookup(self) -> Lookup:
        """The value, and where it came from (see `Cache.lookup`)."""
        cache = self.cache
        serializer = cache.serializer if cache.serializer is not None else PickleSerializer()

        def produce() -> _Produced:
            param = CacheParam(self.expire, set(self.tags))
            try:
                value = self.content_fn(param)
            except NotCache as e:
                return _Produced(e.value, False, [], 0)
            if param.disabled:
                return _Produced(value, False, [], 0)
            return _Produced(value, True, _tags(param.tags), _ttl(param.expire))

        return cache._lookup(
            _name(self.key), _tags(self.tags), _ttl(self.expire), produce, self.wait, serializer
        )

    def invalidate(self) -> bool:
        """Invalidates this item's entry."""
        return self.cache.invalidate_key(self.key)
