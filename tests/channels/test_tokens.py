"""The access-token cache the WeCom, DingTalk and Feishu adapters share: expiry margin, single flight, refusal."""

from __future__ import annotations

import asyncio

import pytest

from coordbot.channels._tokens import CachedToken


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Platform:
    """Hands out t1, t2, … with the given lifetime; with a ``gate`` every fetch waits for it to be set."""

    def __init__(self, lifetime: float = 7200.0) -> None:
        self.lifetime = lifetime
        self.issued = 0
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def fetch(self) -> tuple[str, float]:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.issued += 1
        return f"t{self.issued}", self.lifetime


async def test_the_token_is_kept_until_the_margin_before_it_expires() -> None:
    clock, platform = Clock(), Platform(7200)
    tokens = CachedToken(platform.fetch, margin=300, clock=clock)
    assert await tokens.get() == "t1"
    clock.now += 7200 - 300 - 1
    assert await tokens.get() == "t1"
    clock.now += 1
    assert await tokens.get() == "t2"
    assert tokens.fetches == 2


@pytest.mark.parametrize(("share", "renewed_after"), [(0.1, 540.0), (0.5, 300.0), (1.0, 240.0)])
async def test_a_short_lifetime_is_renewed_at_a_share_of_it(share: float, renewed_after: float) -> None:
    clock, platform = Clock(), Platform(600)
    tokens = CachedToken(platform.fetch, margin=360, margin_share=share, clock=clock)
    await tokens.get()
    assert tokens.expires_at == pytest.approx(clock.now + 600 - min(360, 600 * share))
    clock.now += renewed_after - 1
    assert await tokens.get() == "t1"
    clock.now += 1
    assert await tokens.get() == "t2"


async def test_a_lifetime_under_the_margin_is_fetched_every_time() -> None:
    platform = Platform(200)
    tokens = CachedToken(platform.fetch, margin=300, clock=Clock())
    assert [await tokens.get() for _ in range(3)] == ["t1", "t2", "t3"]


async def test_concurrent_callers_share_one_fetch() -> None:
    platform = Platform()
    platform.gate = asyncio.Event()
    tokens = CachedToken(platform.fetch)
    waiting = [asyncio.create_task(tokens.get()) for _ in range(20)]
    await asyncio.sleep(0)
    platform.gate.set()
    assert await asyncio.gather(*waiting) == ["t1"] * 20
    assert tokens.fetches == 1 and platform.issued == 1


async def test_invalidate_forgets_only_the_refused_token() -> None:
    platform = Platform()
    tokens = CachedToken(platform.fetch)
    refused = await tokens.get()
    tokens.invalidate(refused)
    assert await tokens.get() == "t2"
    tokens.invalidate(refused)  # a second caller refused t1 too: t2 is kept, no fetch
    assert await tokens.get() == "t2" and tokens.fetches == 2


async def test_a_failed_fetch_caches_nothing_and_the_next_get_tries_again() -> None:
    platform = Platform()
    platform.fail = RuntimeError("refused")
    tokens = CachedToken(platform.fetch)
    with pytest.raises(RuntimeError):
        await tokens.get()
    assert tokens.value == ""
    platform.fail = None
    assert await tokens.get() == "t1" and tokens.fetches == 2
