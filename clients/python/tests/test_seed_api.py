"""The tagcache library's API: the decorator and its parameter object,
invalidate_tag/invalidate_key, cleanup, configure, and the blog example of
the package README (the seed README's, changed only in its import)."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
from typing import Any, Dict, List, Optional, Set

import pytest

from helpers import expire_of, keys, read, tags_of
from tagcachefs import Cache, CacheParam, JSONSerializer, NotCache

README = os.path.join(os.path.dirname(__file__), "..", "README.md")
EXAMPLE_DIR = "/tmp/blog_cache"


def blog_example() -> str:
    """The README's blog example: its first Python block."""
    with open(README) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    block: str = blocks[0]
    assert block.startswith("from tagcachefs import Cache, NotCache\n")
    assert EXAMPLE_DIR in block
    return block


def run(code: str, mnt: str) -> Dict[str, Any]:
    namespace: Dict[str, Any] = {"__name__": "blog_example"}
    exec(compile(code.replace(EXAMPLE_DIR, mnt), "README.md", "exec"), namespace)
    return namespace


def test_the_readme_blog_example_runs_unchanged(mnt: str) -> None:
    ns = run(blog_example(), mnt)
    # It calls cache_param.disable(): the content is returned, not cached.
    assert ns["content"] == {"bio": {...}, "recent_blogs": [...]}
    assert read(keys(mnt, "blog-home")) is None
    assert not os.path.exists(os.path.join(mnt, "tags", "bio"))


def test_the_blog_example_without_disable_caches_with_the_tags_and_expiry_set_at_runtime(mnt: str) -> None:
    code = blog_example().replace("    cache_param.disable()\n", "")
    setup, later = code.split('cache.invalidate_tag("bio")')
    ns = run(setup, mnt)
    content = ns["content"]
    assert tags_of(mnt, "blog-home") == ["bio", "blog-new", "some-more-tag"]
    assert 3600 * 24 - 60 <= expire_of(mnt, "blog-home") <= 3600 * 24
    assert pickle.loads(read(keys(mnt, "blog-home")) or b"") == content
    assert ns["home_page_content"].lookup().source == "hit"
    ns["cache"].invalidate_tag("bio")
    assert read(keys(mnt, "blog-home")) is None
    assert pickle.loads(read(os.path.join(mnt, "stale", "blog-home")) or b"") == content
    assert ns["home_page_content"].lookup().source == "computed"
    assert ns["cache"].invalidate_key("blog-home")


def test_a_decorated_function_runs_once_then_its_value_is_served(cache: Cache, mnt: str, name: str) -> None:
    runs: List[CacheParam] = []

    @cache(name, expire=600, tags=(f"{name}-t",))
    def page(param: CacheParam) -> Dict[str, int]:
        runs.append(param)
        return {"run": len(runs)}

    assert page() == {"run": 1}
    assert page() == {"run": 1}
    assert page.lookup().source == "hit"
    assert len(runs) == 1
    assert runs[0].expire == 600 and runs[0].tags == {f"{name}-t"}
    assert tags_of(mnt, name) == [f"{name}-t"]
    assert 590 <= expire_of(mnt, name) <= 600
    assert page.__name__ == "page"


def test_each_run_gets_a_fresh_parameter_object(cache: Cache, mnt: str, name: str) -> None:
    seen: List[Set[str]] = []

    @cache(name, tags=("a-" + name,))
    def page(param: CacheParam) -> bytes:
        seen.append(set(param.tags))
        param.tags.add("b-" + name)
        param.disable()
        return b"x"

    page()
    page()
    assert seen == [{"a-" + name}, {"a-" + name}]


def test_tags_and_expiry_changed_at_runtime_are_what_is_cached(cache: Cache, mnt: str, name: str) -> None:
    @cache(name, expire=600, tags=(f"{name}-a",))
    def page(param: CacheParam) -> str:
        param.tags.add(f"{name}-b")
        param.tags.discard(f"{name}-a")
        param.expire = 100
        return "page"

    assert page() == "page"
    assert tags_of(mnt, name) == [f"{name}-b"]
    assert 90 <= expire_of(mnt, name) <= 100
    assert os.listdir(os.path.join(mnt, "tags", f"{name}-b")) == [name]
    assert not os.path.exists(os.path.join(mnt, "tags", f"{name}-a")) or os.listdir(
        os.path.join(mnt, "tags", f"{name}-a")
    ) == []

    @cache(f"{name}-2")
    def many(param: CacheParam) -> str:
        param.tags.update(f"x{i:02}-{name[-8:]}" for i in range(30))  # more than put/ can carry
        return "many"

    assert many() == "many"
    assert len(tags_of(mnt, f"{name}-2")) == 30


@pytest.mark.parametrize("how", ["disable", "NotCache"])
def test_a_result_not_to_cache_is_returned_and_the_key_stays_free(cache: Cache, mnt: str, name: str, how: str) -> None:
    @cache(name, tags=(f"{name}-t",))
    def page(param: CacheParam) -> str:
        if how == "disable":
            param.disable()
            return "not now"
        raise NotCache("not now")

    assert page.lookup() == ("not now", "computed")
    assert read(keys(mnt, name)) is None
    assert read(os.path.join(mnt, "stale", name)) is None, "nothing was committed"
    assert cache.get_or_compute(name, lambda: b"free") == b"free"


def test_bad_tags_or_expiry_set_at_runtime_raise_and_cache_nothing(cache: Cache, mnt: str, name: str) -> None:
    @cache(name)
    def bad_tag(param: CacheParam) -> str:
        param.tags.add("a b")
        return "x"

    @cache(name)
    def bad_expire(param: CacheParam) -> str:
        param.expire = 1.5  # type: ignore[assignment]
        return "x"

    with pytest.raises(ValueError):
        bad_tag()
    with pytest.raises(TypeError):
        bad_expire()
    assert read(keys(mnt, name)) is None
    assert cache.get_or_compute(name, lambda: b"free") == b"free"


def test_the_decorator_checks_key_tags_and_expiry_when_it_decorates(cache: Cache) -> None:
    with pytest.raises(ValueError):
        cache("a/b")
    with pytest.raises(ValueError):
        cache("k", tags=("a,b",))
    with pytest.raises(TypeError):
        cache("k", expire="60")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        cache("k")(42)  # type: ignore[arg-type]


def test_the_decorator_uses_the_caches_serializer(mnt: str, name: str) -> None:
    cache = Cache(mnt, serializer=JSONSerializer())

    @cache(name)
    def page(param: CacheParam) -> Dict[str, List[int]]:
        return {"a": [1]}

    assert page() == {"a": [1]}
    assert json.loads(read(keys(mnt, name)) or b"") == {"a": [1]}


def test_the_decorator_serves_stale_while_another_process_computes(cache: Cache, mnt: str, name: str) -> None:
    @cache(name)
    def page(param: CacheParam) -> str:
        return "new"

    cache.set(name, pickle.dumps("old"))
    cache.invalidate_key(name)
    holder = os.open(os.path.join(mnt, "put", name), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        assert page.lookup() == ("old", "stale")
    finally:
        os.close(holder)
    assert page.lookup() == ("new", "computed")


def test_invalidate_tag_and_invalidate_key_say_whether_there_was_something(cache: Cache, mnt: str, name: str) -> None:
    tag = f"{name}-t"
    cache.set(name, b"v", tags=(tag,))
    cache.set(f"{name}-2", b"w", tags=(tag,))
    assert cache.invalidate_tag(tag) is True
    assert cache.get(name) is None and cache.get(f"{name}-2") is None
    assert cache.invalidate_tag(tag) is False
    cache.set(name, b"v")
    assert cache.invalidate_key(name) is True
    assert cache.invalidate_key(name) is False
    with pytest.raises(ValueError):
        cache.invalidate_tag("a b")


def test_configure_once_and_on_a_mount_only(mnt: str, tmp_path: Any) -> None:
    cache = Cache()
    with pytest.raises(RuntimeError):
        cache.get("k")
    with pytest.raises(ValueError, match="not a tagcachefs mount"):
        cache.configure(str(tmp_path))
    cache.configure(mnt)
    assert cache.mountpoint == os.path.abspath(mnt) and cache.read_mount is None
    with pytest.raises(RuntimeError):
        cache.configure(mnt)
    with pytest.raises(ValueError, match="not a tagcachefs mount"):
        Cache(mnt, read_mount=str(tmp_path))


def tagcachefs_program() -> Optional[str]:
    return os.environ.get("TAGCACHEFS_BIN") or shutil.which("tagcachefs")


def test_cleanup_runs_tagcachefs_cleanup_on_the_store(cache: Cache, mnt: str, name: str) -> None:
    if tagcachefs_program() is None:
        pytest.skip("no tagcachefs program (TAGCACHEFS_BIN, PATH)")
    cache.set(name, b"v", tags=(f"{name}-t",))
    cache.invalidate_tag(f"{name}-t")
    assert read(os.path.join(mnt, "stale", name)) == b"v"
    report = cache.cleanup()
    assert report is not None and report["entries"] >= 1, report
    assert read(os.path.join(mnt, "stale", name)) is None


def test_cleanup_without_the_program_does_nothing(mnt: str, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAGCACHEFS_BIN", raising=False)
    monkeypatch.setenv("PATH", "")
    cache = Cache(mnt)
    cache.set(name, b"v")
    cache.invalidate_key(name)
    assert cache.cleanup() is None
    assert read(os.path.join(mnt, "stale", name)) == b"v"


def test_cleanup_that_fails_raises(mnt: str, tmp_path: Any) -> None:
    program = os.path.join(str(tmp_path), "tagcachefs")
    with open(program, "w") as f:
        f.write("#!/bin/sh\necho 'no store here' >&2\nexit 1\n")
    os.chmod(program, 0o755)
    with pytest.raises(RuntimeError, match="no store here"):
        Cache(mnt, binary=program).cleanup()
