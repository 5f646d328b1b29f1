"""The shared default pool: created on first use, shared, closed by the last handle, retried after a failed start."""

from __future__ import annotations

import pytest

from boxgym.envs import defaults
from boxgym.errors import ImageNotFound, SandboxClosed
from boxgym.sandboxes import FakeSandbox


class StubPool:
    instances: list[StubPool] = []
    fail_start = False

    def __init__(self, spec, size):
        self.spec, self.size, self.closed = spec, size, False
        StubPool.instances.append(self)

    async def __aenter__(self):
        if StubPool.fail_start:
            raise ImageNotFound("not built")
        return self

    async def acquire(self):
        return FakeSandbox()

    async def aclose(self):
        self.closed = True


@pytest.fixture(autouse=True)
def stub_pool(monkeypatch):
    import boxgym.sandboxes

    StubPool.instances, StubPool.fail_start = [], False
    monkeypatch.setattr(boxgym.sandboxes, "SandboxPool", StubPool, raising=False)
    yield
    assert defaults._pools == {}


async def test_handles_share_one_pool_which_the_last_close_closes():
    a, b = defaults.SharedPool("img", 1), defaults.SharedPool("img", 1)
    await (await a.acquire()).aclose()
    await (await b.acquire()).aclose()
    assert len(StubPool.instances) == 1
    await a.aclose()
    assert not StubPool.instances[0].closed
    await b.aclose()
    await b.aclose()
    assert StubPool.instances[0].closed
    with pytest.raises(SandboxClosed):
        await b.acquire()


async def test_a_pool_that_failed_to_start_is_replaced_on_the_next_acquire():
    handle = defaults.SharedPool("img", 1)
    StubPool.fail_start = True
    with pytest.raises(ImageNotFound):
        await handle.acquire()
    StubPool.fail_start = False
    await (await handle.acquire()).aclose()
    assert [p.closed for p in StubPool.instances] == [True, False]
    await handle.aclose()
    assert StubPool.instances[1].closed


async def test_a_pool_that_warms_its_sandboxes_is_a_pool_of_its_own():
    plain, warm = defaults.SharedPool("img", 1), defaults.SharedPool("img", 1, ("ipython.ready",))
    await (await plain.acquire()).aclose()
    await (await warm.acquire()).aclose()
    assert [pool.spec.warm for pool in StubPool.instances] == [(), ("ipython.ready",)]
    await plain.aclose()
    await warm.aclose()
