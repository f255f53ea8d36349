"""The bounded least-recently-used map behind the verified-token cache, and its doorkeeper.

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


class Doorkeeper:
    """Admits a key to the cache at its second sighting, as TinyLFU's doorkeeper does.

    Most tokens an API sees are reused for their whole lifetime; a token seen once (a scan, a
    burst of one-off clients) then never enters the cache, so it neither evicts the tokens that
    are reused nor leaves objects behind for the cyclic GC to walk. It keeps only the keys'
    hashes, in a set that starts over when it holds `size` of them (a set of ints holds no
    per-key GC-tracked object). A hash collision admits a key early, which is harmless: only
    verified tokens are offered.
    """

    __slots__ = ("_seen", "size")

    def __init__(self, size: int) -> None:
        self.size = max(size, 1)
        self._seen: set[int] = set()

    def admit(self, key: object) -> bool:
        """True when `key` was offered before (since the last start-over)."""
        digest = hash(key)
        if digest in self._seen:
            return True
        if len(self._seen) >= self.size:
            self._seen.clear()
        self._seen.add(digest)
        return False
