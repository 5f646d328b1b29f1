"""A local Ray cluster for the tests of boxgym.rollout.ray: started once, only if one asks for it.

Two logical CPUs, one per actor: the machine has two cores and the actors are small.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    ray = pytest.importorskip("ray")
    from boxgym.rollout.ray import connect

    connect(num_cpus=2)
    yield ray
    ray.shutdown()
