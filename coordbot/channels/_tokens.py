"""An access token the platform hands out for a while (WeCom's access_token, DingTalk's app token, Feishu's
tenant_access_token): cached until shortly before it expires, fetched by one caller for all (single flight),
and forgotten when the platform calls it invalid.

What a refusal looks like, and whether a call is tried again, stays with each adapter; this is the cache.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

TokenFetch = Callable[[], Awaitable[tuple[str, float]]]


class CachedToken:
    """``fetch`` asks the platform for a token: ``(token, lifetime in seconds)``, or raises (nothing is cached).

    A token is used until ``margin`` seconds before its lifetime ends, or until ``margin_share`` of its
    lifetime before, whichever is sooner to the end (a short-lived token is not renewed at every call).
    ``expires_at`` (on ``clock``) is when it stops being used; ``fetches`` counts the calls of ``fetch``.
    """

    def __init__(
        self,
        fetch: TokenFetch,
        *,
        margin: float = 300.0,
        margin_share: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.margin = margin
        self.margin_share = margin_share
        self.clock = clock
        self.value = ""
        self.expires_at = 0.0
        self.fetches = 0
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return bool(self.value) and self.clock() < self.expires_at

    async def get(self) -> str:
        """The cached token, or a new one; concurrent callers wait for the one fetch under way."""
        if self._fresh():
            return self.value
        async with self._lock:
            if self._fresh():
                return self.value  # another caller fetched it while we waited
            self.fetches += 1
            token, lifetime = await self._fetch()
            self.value = token
            self.expires_at = self.clock() + lifetime - min(self.margin, lifetime * self.margin_share)
            return token

    def invalidate(self, token: str) -> None:
        """The platform refused ``token``: the next ``get`` fetches, unless another caller already did."""
        if token == self.value:
            self.value, self.expires_at = "", 0.0
