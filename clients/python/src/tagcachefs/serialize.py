"""How values become the bytes of an entry, and back.

A serializer is any object with ``dumps(value) -> bytes | str`` and
``loads(data: bytes) -> value``: the ``pickle`` and ``json`` modules
themselves qualify, and so do the two classes here (the names the tagcache
library uses). A ``str`` from ``dumps`` is stored as UTF-8.
"""

from __future__ import annotations

import json
import pickle
from typing import Any, Protocol, Union


class Serializer(Protocol):
    """What `Cache(serializer=...)` takes."""

    def dumps(self, value: Any, /) -> Union[bytes, str]: ...

    def loads(self, data: bytes, /) -> Any: ...


class Raw:
    """Values are bytes, stored as they are (a ``str`` is stored as UTF-8,
    and read back as bytes): what other programs reading ``keys/<name>``
    see. The default of ``get``/``set``/``get_or_compute``."""

    def dumps(self, value: Any, /) -> bytes:
        if isinstance(value, bytes):
            return value
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, str):
            return value.encode()
        raise TypeError(
            f"without a serializer a value is bytes or str, not {type(value).__name__}"
            " (pass serializer=PickleSerializer() or JSONSerializer() to Cache)"
        )

    def loads(self, data: bytes, /) -> bytes:
        return data


class JSONSerializer:
    """JSON, compact. Keyword arguments go to ``json.dumps``."""

    def __init__(self, **dump_options: Any) -> None:
        dump_options.setdefault("separators", (",", ":"))
        self.dump_options = dump_options

    def dumps(self, value: Any, /) -> bytes:
        return json.dumps(value, **self.dump_options).encode()

    def loads(self, data: bytes, /) -> Any:
        return json.loads(data)


class PickleSerializer:
    """Any picklable Python object; the default of the decorator, as in the
    tagcache library. Only read what this application wrote: unpickling
    runs code."""

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self.protocol = protocol

    def dumps(self, value: Any, /) -> bytes:
        return pickle.dumps(value, protocol=self.protocol)

    def loads(self, data: bytes, /) -> Any:
        return pickle.loads(data)
