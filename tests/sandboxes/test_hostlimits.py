"""Host-wide limits: two holders with separate descriptors behave like two processes."""

from __future__ import annotations

import asyncio
import time

from boxgym.sandboxes.hostlimits import HostRate, HostSlots


async def test_slots_cap_holders_across_independent_openers(tmp_path):
    first, second = HostSlots("api", 2, directory=tmp_path), HostSlots("api", 2, directory=tmp_path)
    held = 0
    peak = 0

    async def use(slots: HostSlots) -> None:
        nonlocal held, peak
        async with slots.hold():
            held += 1
            peak = max(peak, held)
            await asyncio.sleep(0.05)
            held -= 1

    await asyncio.gather(*(use(first if i % 2 else second) for i in range(8)))
    assert peak == 2
    first.close()
    second.close()


async def test_a_released_slot_is_taken_by_the_other_opener(tmp_path):
    first, second = HostSlots("api", 1, directory=tmp_path), HostSlots("api", 1, directory=tmp_path)
    async with first.hold():
        waiter = asyncio.ensure_future(second.hold().__aenter__())
        await asyncio.sleep(0.05)
        assert not waiter.done()
    await asyncio.wait_for(waiter, 1)
    first.close()
    second.close()


async def test_rate_is_shared_between_openers(tmp_path):
    first, second = HostRate("create", 20.0, 2, directory=tmp_path), HostRate("create", 20.0, 2, directory=tmp_path)
    started = time.monotonic()
    for i in range(8):
        await (first if i % 2 else second).take()
    elapsed = time.monotonic() - started
    # 2 come from the burst, the other 6 at 20/s: at least 0.3 s whoever asks.
    assert 0.25 <= elapsed < 2.0
    first.close()
    second.close()
