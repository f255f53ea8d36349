"""The bounded least-recently-used map behind the verified-token cache.

`cachetools.LRUCache` runs about six Python-level calls per lookup and more per insert and
eviction; on a cache hit that is most of the verifier's own cost, and past `maxsize` every
first-seen token would pay an insert plus an eviction. `OrderedDict` does the same bookkeeping
in C, and `offer` admits a key only at its second sighting, as TinyLFU's doorkeeper does.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

_K = TypeVar("_K")
_V = TypeVar("_V")


class LRUCache(Generic[_K, _V]):
    """At most `maxsize` entries; a lookup refreshes its entry, an insert evicts the oldest.
    `maxsize` 0 keeps nothing (caching disabled)."""

    __slots__ = ("_data", "_offered", "maxsize")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 0:
            raise ValueError("maxsize must be >= 0")
        self.maxsize = maxsize
        self._data: OrderedDict[_K, _V] = OrderedDict()
        self._offered: set[int] = set()  # hashes of keys offered once, up to maxsize of them

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

    def offer(self, key: _K, value: _V) -> None:
        """Insert at the key's second offer, since the memory of offers last started over.

        Most tokens an API sees are reused for their whole lifetime; a key offered once (a
        scan, a burst of one-off clients) then never enters, so it neither evicts the keys that
        are reused nor leaves objects behind for the cyclic GC to walk. Only the keys' hashes
        are remembered (a set of ints holds no GC-tracked object per key), and forgotten all at
        once when `maxsize` of them are held. A hash collision admits a key early: harmless, as
        only verified tokens are offered.
        """
        digest = hash(key)
        if digest in self._offered:
            self[key] = value
            return
        if len(self._offered) >= self.maxsize:
            self._offered.clear()
        self._offered.add(digest)

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        self._data.clear()
