"""the LLM gateway's added latency, throughput and CPU per request, against the direct engine and LiteLLM

Runs in one process tree: the scripted engine, the gateway (recording to a temporary store) and,
if ``litellm[proxy]`` installs from PyPI into its own venv, a LiteLLM proxy in front of the same
engine, each as a child process; the clients are aiohttp sessions in this process. Each path is
measured the same way:

* unloaded latency: one client, sequential requests, non-streaming and streaming, in interleaved
  blocks so that a noisy neighbour hits every path alike;
* throughput: ``--concurrency`` clients sharing ``--throughput-requests`` requests;
* CPU per request: the proxy process tree's user+system time (``/proc/<pid>/stat``) over the
  throughput run divided by its requests, which does not depend on how many cores the clients
  and the engine take.

Storage: ``store_bytes_ratio`` is the size of the store after one 100-turn agent episode (a tool
call and a ~500-character tool result per turn, through an in-process gateway and scripted engine)
divided by the size of that episode's final prompt and completion ids written once as JSON: what
recording costs on disk against the least any record of the episode could hold.

Workers: ``workers_scaling`` is the throughput of ``serve --workers 2`` over ``--workers 1`` in
the same run, with a canned engine and raw clients cheap enough that the gateway is what is
measured; with each one's CPU per request, and the CPU a hand-over and an HTTP hop cost
(:mod:`boxgym.bench.gateway_workers`).

The last line (with ``--json``) is one JSON object; ``litellm_*`` fields are null if LiteLLM did
not install or start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .gateway_workers import workers_scaling
from .procs import Child, cpu_seconds, free_port

BODY = {"model": "boxgym-mock", "messages": [{"role": "user", "content": "Say something short."}], "max_tokens": 32}


_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "bash",
            "description": "run a shell command",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
        },
    }
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per path and mode")
    parser.add_argument("--throughput-requests", type=int, default=5000, help="requests per path under load")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=4, help="interleaved blocks per latency run")
    parser.add_argument("--litellm-venv", default="/tmp/litellm-venv", help="venv to install litellm[proxy] into")
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM")
    parser.add_argument("--store-turns", type=int, default=100, help="turns of the episode store_bytes_ratio measures")
    parser.add_argument("--workers-requests", type=int, default=5000, help="requests per round of workers_scaling")
    parser.add_argument("--workers-rounds", type=int, default=3, help="alternating rounds of 1 and 2 workers")


# -- processes -------------------------------------------------------------------


def _litellm_binary(venv: str) -> str | None:
    binary = Path(venv) / "bin" / "litellm"
    if binary.exists():
        return str(binary)
    try:
        subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True, timeout=120)
        subprocess.run(
            [str(Path(venv) / "bin" / "pip"), "install", "-q", "litellm[proxy]"],
            check=True,
            capture_output=True,
            timeout=900,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"litellm[proxy] did not install: {exc}", file=sys.stderr)
        return None
    return str(binary) if binary.exists() else None


# -- clients ---------------------------------------------------------------------


async def _one(session: Any, url: str, payload: bytes, stream: bool) -> bool:
    async with session.post(url, data=payload, headers={"Content-Type": "application/json"}) as r:
        if stream:
            async for _ in r.content.iter_any():
                pass
        else:
            await r.read()
        return r.status == 200


async def _latency(session: Any, urls: dict[str, str], n: int, blocks: int, stream: bool) -> dict[str, list[float]]:
    import aiohttp

    payload = json.dumps(BODY | {"stream": stream}).encode()
    times: dict[str, list[float]] = {k: [] for k in urls}
    per_block = max(1, n // blocks)
    for _ in range(blocks):
        for name, url in urls.items():
            for _ in range(per_block):
                for attempt in (0, 1):
                    t = time.perf_counter()
                    try:
                        ok = await _one(session, url, payload, stream)
                        break
                    except aiohttp.ClientConnectionError:  # a keep-alive race: measure that request again
                        if attempt:
                            raise
                times[name].append((time.perf_counter() - t) * 1000)
                if not ok:
                    raise RuntimeError(f"{name} failed a request")
    return times


async def _throughput(session: Any, url: str, n: int, concurrency: int, pid: int) -> tuple[float, float]:
    payload = json.dumps(BODY).encode()
    remaining = n
    failures = 0

    async def worker() -> None:
        nonlocal remaining, failures
        while remaining > 0:
            remaining -= 1
            if not await _one(session, url, payload, False):
                failures += 1

    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    if failures:
        raise RuntimeError(f"{failures} requests failed under load at {url}")
    return n / elapsed, cpu * 1000 / n


def _tool_output(turn: int) -> str:
    return "".join(f"{turn * 20 + j:4d}  def step_{turn}_{j}(x):  return x * {j} + {turn}\n" for j in range(12))


async def _store_ratio(turns: int, work: Path) -> dict[str, Any]:
    """One ``turns``-turn agent episode through an embedded gateway: its store's size against its
    final prompt + completion ids written once as JSON."""
    import aiohttp

    from boxgym.gateway import Gateway, GatewayConfig, MockEngine, MockEngineConfig, Reply, StoreConfig, UpstreamConfig

    replies = [
        Reply.from_json(
            {
                "text": f"Looking at part {i} of the module.",
                "tool_calls": [{"name": "bash", "arguments": {"command": f"sed -n {i * 12},+12p src/mod.py"}}],
            }
        )
        for i in range(turns - 1)
    ]
    path = work / "episode.jsonl"
    async with MockEngine(MockEngineConfig()) as engine:
        engine.script("episode", [*replies, Reply.say("All done.")])
        config = GatewayConfig(upstream=UpstreamConfig(engine.url), store=StoreConfig(str(path), fsync_interval=None))
        async with Gateway(config) as gw, aiohttp.ClientSession() as session:
            messages: list[dict[str, Any]] = [
                {"role": "system", "content": "You are a careful engineer."},
                {"role": "user", "content": "Read the module and summarise it."},
            ]
            url = gw.base_url_for("episode") + "/chat/completions"
            for turn in range(turns):
                async with session.post(url, json={"model": "m", "messages": messages, "tools": _TOOLS}) as r:
                    reply = (await r.json())["choices"][0]["message"]
                messages.append({k: v for k, v in reply.items() if k in ("role", "content", "tool_calls")})
                for call in reply.get("tool_calls") or ():
                    messages.append({"role": "tool", "tool_call_id": call["id"], "content": _tool_output(turn)})
            last = gw.records("episode")[-1]
    assert last.prompt_token_ids is not None and last.completion_token_ids is not None
    once = len(json.dumps(list(last.prompt_token_ids + last.completion_token_ids), separators=(",", ":")))
    size = path.stat().st_size
    print(f"store: {size} bytes for {turns} turns, {size / once:.2f}x the final ids once", file=sys.stderr)
    return {"store_bytes_ratio": round(size / once, 3), "store_bytes": size, "store_turns": turns}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import aiohttp

    py = sys.executable
    e_port, g_port = free_port(), free_port()
    engine_url = f"http://127.0.0.1:{e_port}"
    store = work / "gateway.jsonl"
    children: list[Child] = []
    litellm_bin = None if args.no_litellm else _litellm_binary(args.litellm_venv)
    try:
        children.append(
            Child(
                "engine",
                [py, "-m", "boxgym", "gateway", "mock-engine", "--port", str(e_port), "--reply-tokens", "24"],
                engine_url + "/health",
                work / "engine.log",
            )
        )
        gateway = Child(
            "gateway",
            [
                py,
                "-m",
                "boxgym",
                "gateway",
                "serve",
                "--upstream",
                engine_url,
                "--store",
                str(store),
                "--port",
                str(g_port),
            ],
            f"http://127.0.0.1:{g_port}/health",
            work / "gateway.log",
        )
        children.append(gateway)
        litellm = None
        if litellm_bin:
            l_port = free_port()
            config = work / "litellm.yaml"
            # No master key: the gateway authenticates nobody either, so both proxies do the same work.
            config.write_text(
                json.dumps(
                    {
                        "model_list": [
                            {
                                "model_name": "boxgym-mock",
                                "litellm_params": {
                                    "model": "openai/boxgym-mock",
                                    "api_base": engine_url + "/v1",
                                    "api_key": "unused",
                                },
                            }
                        ],
                        "general_settings": {"dangerously_permit_weak_or_unset_master_key": True},
                        "litellm_settings": {"drop_params": True, "telemetry": False},
                    }
                )
            )
            # no per-request access log (the gateway writes none) and no fetching of the price list
            quiet = work / "litellm-logging.json"
            quiet.write_text(
                json.dumps(
                    {
                        "version": 1,
                        "disable_existing_loggers": False,
                        "loggers": {"uvicorn.access": {"level": "WARNING"}},
                    }
                )
            )
            litellm = Child(
                "litellm",
                [
                    litellm_bin,
                    "--config",
                    str(config),
                    "--port",
                    str(l_port),
                    "--num_workers",
                    "1",
                    "--log_config",
                    str(quiet),
                ],
                f"http://127.0.0.1:{l_port}/health/liveliness",
                work / "litellm.log",
                env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"},
            )
            children.append(litellm)
        # idle connections close on our side first (uvicorn, under LiteLLM, drops them after 5 s)
        connector = aiohttp.TCPConnector(limit=args.concurrency * 2, keepalive_timeout=2.0)
        async with aiohttp.ClientSession(connector=connector) as session:
            for child in children:
                try:
                    await child.wait_ready(session, 180 if child.name == "litellm" else 30)
                except RuntimeError as exc:
                    if child is not litellm:
                        raise
                    tail = (work / "litellm.log").read_text(errors="replace").strip().splitlines()[-5:]
                    print(f"LiteLLM did not start: {exc}\n  " + "\n  ".join(tail), file=sys.stderr)
                    litellm.stop()
                    litellm = None
            urls = {
                "direct": engine_url + "/v1/chat/completions",
                "gateway": f"http://127.0.0.1:{g_port}/episodes/bench/v1/chat/completions",
            }
            if litellm is not None:
                urls["litellm"] = f"http://127.0.0.1:{l_port}/v1/chat/completions"
            gateway_requests = 0
            await _latency(session, urls, 200, 1, False)  # warm up every path
            gateway_requests += 200
            plain = await _latency(session, urls, args.requests, args.blocks, False)
            streamed = await _latency(session, urls, args.requests, args.blocks, True)
            gateway_requests += len(plain["gateway"]) + len(streamed["gateway"])
            for name, times in plain.items():
                print(
                    f"{name:8s} unloaded p50 {_pct(times, 0.5):.3f} ms  p99 {_pct(times, 0.99):.3f} ms  "
                    f"stream p50 {_pct(streamed[name], 0.5):.3f} ms",
                    file=sys.stderr,
                )
            direct_rps, _ = await _throughput(
                session, urls["direct"], args.throughput_requests, args.concurrency, children[0].proc.pid
            )
            gateway_rps, gateway_cpu = await _throughput(
                session, urls["gateway"], args.throughput_requests, args.concurrency, gateway.proc.pid
            )
            gateway_requests += args.throughput_requests
            litellm_cpu = litellm_rps = None
            if litellm is not None:
                litellm_rps, litellm_cpu = await _throughput(
                    session, urls["litellm"], args.throughput_requests, args.concurrency, litellm.proc.pid
                )
            print(
                f"throughput: direct {direct_rps:.0f} rps, gateway {gateway_rps:.0f} rps ({gateway_cpu:.3f} ms CPU/req)"
                + (f", litellm {litellm_rps:.0f} rps ({litellm_cpu:.3f} ms CPU/req)" if litellm_rps else ""),
                file=sys.stderr,
            )
        with open(store, "rb") as fh:
            records_written = sum(1 for line in fh if line.endswith(b"\n"))
    finally:
        for child in reversed(children):
            child.stop()

    def added(path: str, times: dict[str, list[float]], q: float) -> float:
        return round(_pct(times[path], q) - _pct(times["direct"], q), 4)

    has_litellm = "litellm" in plain
    result = {
        "direct_p50_ms": round(_pct(plain["direct"], 0.5), 4),
        "gateway_p50_ms": round(_pct(plain["gateway"], 0.5), 4),
        "added_p50_ms": added("gateway", plain, 0.5),
        "added_p99_ms": added("gateway", plain, 0.99),
        "direct_stream_p50_ms": round(_pct(streamed["direct"], 0.5), 4),
        "gateway_stream_p50_ms": round(_pct(streamed["gateway"], 0.5), 4),
        "added_stream_p50_ms": added("gateway", streamed, 0.5),
        "direct_rps": round(direct_rps, 1),
        "gateway_rps": round(gateway_rps, 1),
        "rps_ratio": round(gateway_rps / direct_rps, 3),
        "gateway_cpu_ms_per_req": round(gateway_cpu, 4),
        "records_written": records_written,
        "records_expected": gateway_requests,
        "litellm_p50_ms": round(_pct(plain["litellm"], 0.5), 4) if has_litellm else None,
        "litellm_added_p50_ms": added("litellm", plain, 0.5) if has_litellm else None,
        "litellm_added_stream_p50_ms": added("litellm", streamed, 0.5) if has_litellm else None,
        "litellm_rps": round(litellm_rps, 1) if litellm_rps else None,
        "litellm_cpu_ms_per_req": round(litellm_cpu, 4) if litellm_cpu is not None else None,
        **await _store_ratio(args.store_turns, work),
        **await workers_scaling(
            work / "workers",
            BODY,
            concurrency=args.concurrency,
            requests=args.workers_requests,
            rounds=args.workers_rounds,
        ),
        "requests_per_latency_run": len(plain["direct"]),
        "throughput_requests": args.throughput_requests,
        "concurrency": args.concurrency,
        "cpus": os.cpu_count(),
    }
    return result


def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="boxgym-bench-gateway-"))
    try:
        result = asyncio.run(_bench(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    ok = result["records_written"] == result["records_expected"]
    return 0 if ok else 1
