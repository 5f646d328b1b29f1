"""A store written by several workers: the owner of an episode, the parts' names, and every
reader reading the parts as one store."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from boxgym.errors import GatewayStoreError
from boxgym.gateway import RecordStore, StoreConfig, read_calls, store_files, worker_of
from boxgym.gateway.parts import check_layout, part_of, part_path, store_of
from boxgym.gateway.upstream.replay import store_path
from boxgym.trajectories import RunDir

from .test_consistency import rec


def test_the_owner_of_an_episode_is_the_documented_hash() -> None:
    # changing the mapping would move episodes between the parts of existing stores
    for episode in ("ep-0", "agent-12", "é/ü", "default"):
        digest = hashlib.blake2b(episode.encode(), digest_size=8).digest()
        for n in (2, 3, 8):
            assert worker_of(episode, n) == int.from_bytes(digest, "big") % n
    assert [worker_of(f"ep-{i}", 2) for i in range(10)] == [0, 0, 1, 1, 0, 0, 1, 1, 1, 1]
    assert worker_of("anything", 1) == 0
    owners = {worker_of(f"ep-{i}", 4) for i in range(200)}
    assert owners == {0, 1, 2, 3}


def test_the_owner_does_not_depend_on_the_process() -> None:
    code = "from boxgym.gateway import worker_of; print([worker_of(f'x{i}', 5) for i in range(20)])"
    runs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed}
        ).stdout
        for seed in ("1", "2")
    }
    assert runs == {str([worker_of(f"x{i}", 5) for i in range(20)]) + "\n"}


def test_part_names(tmp_path: Path) -> None:
    store = tmp_path / "gateway.jsonl"
    assert part_path(store, 1, 3) == tmp_path / "gateway.1-of-3.jsonl"
    assert part_of(tmp_path / "gateway.1-of-3.jsonl") == (1, 3)
    assert part_of(store) is None and part_of(tmp_path / "gateway.3-of-3.jsonl") is None
    assert store_of(tmp_path / "gateway.1-of-3.jsonl") == store and store_of(store) == store
    assert store_of(tmp_path / "plain.0-of-2") == tmp_path / "plain"
    assert store_files(store) == ()
    for i in (1, 0):
        part_path(store, i, 2).touch()
    (tmp_path / "gateway.0-of-2.jsonl.bak").touch()
    (tmp_path / "other.0-of-2.jsonl").touch()
    assert store_files(store) == (part_path(store, 0, 2), part_path(store, 1, 2))
    store.write_text("")
    assert store_files(store)[0] == store


@pytest.mark.parametrize(
    ("existing", "workers", "refused"),
    [
        pytest.param([], 2, False, id="new"),
        pytest.param(["gateway.0-of-2.jsonl"], 2, False, id="same-count"),
        pytest.param(["gateway.0-of-2.jsonl"], 3, True, id="other-count"),
        pytest.param(["gateway.0-of-2.jsonl"], 1, True, id="parts-then-one"),
        pytest.param(["gateway.jsonl"], 2, True, id="one-then-parts"),
        pytest.param(["gateway.jsonl"], 1, False, id="one-then-one"),
    ],
)
def test_a_store_is_served_by_the_count_of_workers_that_wrote_it(
    tmp_path: Path, existing: list[str], workers: int, refused: bool
) -> None:
    for name in existing:
        (tmp_path / name).write_text('{"episode_id":"e"}\n')
    store = tmp_path / "gateway.jsonl"
    if not refused:
        check_layout(store, workers)
        return
    with pytest.raises(GatewayStoreError, match="--workers"):
        check_layout(store, workers)
    path = store if workers == 1 else part_path(store, 0, workers)
    with pytest.raises(GatewayStoreError, match="--workers"):
        RecordStore(StoreConfig(str(path)))  # the store refuses it too, whoever opens it


def _episode_for(worker: int, workers: int, tag: str) -> str:
    return next(e for e in (f"{tag}-{i}" for i in range(1000)) if worker_of(e, workers) == worker)


async def _write_parts(store: Path) -> dict[str, list[str]]:
    """Two workers' parts, as serve --workers 2 writes them: each episode in its owner's part."""
    written: dict[str, list[str]] = {}
    for worker in (0, 1):
        part = RecordStore(StoreConfig(str(part_path(store, worker, 2)), fsync_interval=None))
        for tag in ("a", "b"):
            episode = _episode_for(worker, 2, tag)
            first = replace(rec(f"{episode}-1", [1, 2], [3]), episode_id=episode)
            second = replace(rec(f"{episode}-2", [1, 2, 3, 4], [5]), episode_id=episode)
            part.append(first)
            part.append(second)
            written[episode] = [first.call_id, second.call_id]
        await part.aclose()
    return written


async def test_read_calls_reads_the_parts_as_one_store(tmp_path: Path) -> None:
    store = tmp_path / "gateway.jsonl"
    written = await _write_parts(store)
    assert sorted(r.call_id for r in read_calls(store)) == sorted(c for calls in written.values() for c in calls)
    for episode, calls in written.items():
        assert [r.call_id for r in read_calls(store, episode)] == calls
    # one episode is read from its owner's part alone: the other part is not even opened
    owner_of_a = worker_of(next(iter(written)), 2)
    part_path(store, 1 - owner_of_a, 2).write_bytes(b"not json\n")
    assert [r.call_id for r in read_calls(store, next(iter(written)))] == next(iter(written.values()))
    with pytest.raises(FileNotFoundError):
        list(read_calls(tmp_path / "missing.jsonl"))


async def test_run_dir_and_replay_read_the_parts(tmp_path: Path) -> None:
    written = await _write_parts(tmp_path / "gateway.jsonl")
    run = RunDir(tmp_path)
    assert run.gateway_files == (tmp_path / "gateway.0-of-2.jsonl", tmp_path / "gateway.1-of-2.jsonl")
    for episode, calls in written.items():
        assert [r.call_id for r in run.calls(episode)] == calls
    assert len(list(run.gateway_records())) == 8
    assert store_path(tmp_path) == tmp_path / "gateway.jsonl"  # the replay upstream takes it
    with pytest.raises(ValueError, match="nothing to replay"):
        store_path(tmp_path / "elsewhere")


def test_export_reads_the_parts(tmp_path: Path) -> None:
    import asyncio
    import json

    written = asyncio.run(_write_parts(tmp_path / "gateway.jsonl"))
    episode = next(iter(written))
    out = subprocess.run(
        [sys.executable, "-m", "boxgym", "gateway", "export", "--store", str(tmp_path / "gateway.jsonl"),
         "--episode", episode],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    view = json.loads(out.stdout)
    assert [c for s in view["sequences"] for c in s["call_ids"]] == written[episode]
