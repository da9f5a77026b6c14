"""What the tests look at on the mount, from outside the package."""

from __future__ import annotations

import os
from typing import List, Optional


def keys(mnt: str, key: str) -> str:
    return os.path.join(mnt, "keys", key)


def tags_of(mnt: str, key: str) -> List[str]:
    value = os.getxattr(keys(mnt, key), "user.tags").decode()
    return sorted(t for t in value.split(",") if t)


def expire_of(mnt: str, key: str) -> int:
    return int(os.getxattr(keys(mnt, key), "user.expire"))


def read(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb", buffering=0) as f:
            return f.readall()
    except FileNotFoundError:
        return None
