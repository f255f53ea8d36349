"""The bounded least-recently-used map behind the verified-token cache.

`cachetools.LRUCache` runs about six Python-level calls per lookup and more per insert and
eviction; on a cache hit that is most of the verifier's own cost, and past `maxsize` every
first-seen token pays an insert plus an eviction. `OrderedDict` does the same bookkeeping in C.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

_K = TypeVar("_K")
_V = TypeVar("_V")


class LRUCache(Generic[_K, _V]):
    """At most `maxsize` entries; a lookup refreshes its entry, an insert evicts the oldest.
    `maxsize` 0 keeps nothing (caching disabled)."""

    __slots__ = ("_data", "maxsize")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 0:
            raise ValueError("maxsize must be >= 0")
        self.maxsize = maxsize
        self._data: OrderedDict[_K, _V] = OrderedDict()

    def get(self, key: _K) -> _V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def __setitem__(self, key: _K, value: _V) -> None:
        if self.maxsize == 0:
            return
        data = self._data
        data[key] = value
        data.move_to_end(key)
        if len(data) > self.maxsize:
            data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        self._data.clear()
