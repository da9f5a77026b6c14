"""The package against a real tagcachefs mount.

TAGCACHEFS_MNT (required): the mount point. TAGCACHEFS_FAST (optional): its
read-only fast view (--read-mount); the `cache` fixture then reads hits
there. TAGCACHEFS_BIN (optional): the tagcachefs program, for cleanup().
Without TAGCACHEFS_MNT the run fails: these tests are never skipped.
"""

from __future__ import annotations

import os
import re
import uuid
from typing import Iterator, Optional

import pytest

from tagcachefs import Cache


def pytest_configure(config: pytest.Config) -> None:
    mnt = os.environ.get("TAGCACHEFS_MNT")
    if not mnt or not os.path.isdir(os.path.join(mnt, "keys")):
        raise pytest.UsageError(
            "TAGCACHEFS_MNT must name a tagcachefs mount point "
            f"(got {mnt!r}); mount one: tagcachefs STORE MNT [--read-mount FAST]"
        )


@pytest.fixture(scope="session")
def mnt() -> str:
    return os.environ["TAGCACHEFS_MNT"]


@pytest.fixture(scope="session")
def fast() -> Optional[str]:
    return os.environ.get("TAGCACHEFS_FAST") or None


@pytest.fixture
def cache(mnt: str, fast: Optional[str]) -> Cache:
    """Bytes values; hits on the fast view when there is one."""
    return Cache(mnt, read_mount=fast)


@pytest.fixture
def name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A key (or tag) no other test uses."""
    base = re.sub(r"[^A-Za-z0-9_.-]", "-", request.node.name)[:80]
    yield f"{base}-{uuid.uuid4().hex[:8]}"
