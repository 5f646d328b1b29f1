"""``boxgym gateway``: serve the recording gateway, run the scripted engine, export training views."""

from __future__ import annotations

import argparse
import json
import os
import sys

HELP = "the LLM gateway: serve it, run the scripted engine, export an episode's training view"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="gateway_command", metavar="ACTION", required=True)

    serve = sub.add_parser("serve", help="run the recording gateway in front of an engine")
    serve.add_argument("--upstream", help="the engine's base URL, e.g. http://127.0.0.1:8000")
    serve.add_argument("--replay", metavar="RUN", help="no engine: answer each episode with its calls recorded in "
                       "RUN (a run directory or gateway.jsonl), in order")  # fmt: skip
    serve.add_argument("--engine", choices=("vllm", "sglang", "openai"), default="vllm")
    serve.add_argument("--store", required=True, help="the JSONL file records are appended to "
                       "(with --workers N, each worker's part beside it: NAME.k-of-N.jsonl)")  # fmt: skip
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--api-key", default=None, help="bearer sent to the engine (the client's never is)")
    serve.add_argument("--weight-version", default=None, help="recorded when the engine sends no X-Weight-Version")
    serve.add_argument("--fsync-interval", type=float, default=1.0, help="seconds between fsyncs; 0 never fsyncs")
    serve.add_argument("--timeout", type=float, default=600.0, help="deadline of one upstream call, seconds")
    # defaults: boxgym.gateway.ServerConfig's (not imported here: `boxgym --help` stays quick)
    serve.add_argument("--backlog", type=int, default=None, help="listen backlog (default 4096; capped by somaxconn)")
    serve.add_argument(
        "--header-timeout", type=float, default=None, help="seconds for a request's headers, and idle (default 75)"
    )
    serve.add_argument("--body-timeout", type=float, default=None, help="seconds for a request's body (default 60)")
    serve.add_argument(
        "--shutdown-grace",
        type=float,
        default=None,
        help="on SIGTERM, seconds calls in flight may take before they are cancelled (default 30)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes serving the port, each owning a share of the episodes (default 1; Linux)",
    )
    serve.add_argument(
        "--admin-token",
        default=os.environ.get("BOXGYM_GATEWAY_ADMIN_TOKEN"),
        help="bearer the control routes require (default: $BOXGYM_GATEWAY_ADMIN_TOKEN; unset: open)",
    )

    mock = sub.add_parser("mock-engine", help="run the scripted OpenAI/vLLM-compatible engine")
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=8000)
    mock.add_argument("--mode", choices=("seeded", "tools"), default="seeded")
    mock.add_argument("--seed", type=int, default=0)
    mock.add_argument("--reply-tokens", type=int, default=16)
    mock.add_argument("--token-delay", type=float, default=0.0, help="seconds per generated token")
    mock.add_argument(
        "--script",
        default=None,
        help='JSON file {"episode": [{"text": ...} | {"tool_calls": [{"name": ..., "arguments": {...}}]}, ...]}',
    )

    export = sub.add_parser("export", help="write an episode's training view (token ids, loss mask, logprobs)")
    export.add_argument("--store", required=True, help="the gateway's JSONL record file (its workers' parts too)")
    export.add_argument("--episode", required=True, help="the episode id")
    export.add_argument("--out", default="-", help="output file (default: stdout)")
    export.add_argument(
        "--loss-rule",
        choices=("once", "per_branch"),
        default="once",
        help="once: each sampled token carries loss in one sequence; per_branch: in every branch holding it",
    )


def _serve(args: argparse.Namespace) -> int:
    import logging

    from boxgym.gateway import GatewayConfig, ServerConfig, StoreConfig, Timeouts, UpstreamConfig, serve

    if (args.upstream is None) == (args.replay is None):
        print("boxgym gateway serve: give --upstream URL or --replay RUN, not both", file=sys.stderr)
        return 2
    engine = "replay" if args.replay else args.engine
    if args.replay:
        from boxgym.gateway.upstream.replay import store_path

        try:
            store_path(args.replay)
        except ValueError as exc:
            print(f"boxgym gateway serve: {exc}", file=sys.stderr)
            return 2
    if args.workers < 1:
        print("boxgym gateway serve: --workers must be at least 1", file=sys.stderr)
        return 2
    given = {
        "workers": args.workers,
        "backlog": args.backlog,
        "header_timeout": args.header_timeout,
        "body_timeout": args.body_timeout,
        "shutdown_grace": args.shutdown_grace,
    }
    config = GatewayConfig(
        upstream=UpstreamConfig(args.replay or args.upstream, engine=engine, api_key=args.api_key),
        store=StoreConfig(args.store, fsync_interval=args.fsync_interval or None),
        timeouts=Timeouts(total=args.timeout),
        server=ServerConfig(**{k: v for k, v in given.items() if v is not None}),
        host=args.host,
        port=args.port,
        weight_version=args.weight_version,
        admin_token=args.admin_token or None,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    from boxgym.errors import GatewayError

    workers = f", {args.workers} workers" if args.workers > 1 else ""
    print(
        f"boxgym gateway on http://{args.host}:{args.port}{workers} -> {config.upstream.url} ({engine}),"
        f" records in {args.store}",
        file=sys.stderr,
    )
    try:
        return serve(config)
    except GatewayError as exc:
        print(f"boxgym gateway serve: {exc}", file=sys.stderr)
        return 1


def _mock(args: argparse.Namespace) -> int:
    from aiohttp import web

    from boxgym.gateway.mock import MockEngineConfig, Reply, create_engine_app

    scripts = {}
    if args.script:
        with open(args.script) as fh:
            raw = json.load(fh)
        scripts = {episode: [Reply.from_json(r) for r in replies] for episode, replies in raw.items()}
    config = MockEngineConfig(
        host=args.host,
        port=args.port,
        mode=args.mode,
        seed=args.seed,
        reply_tokens=args.reply_tokens,
        token_delay=args.token_delay,
        scripts=scripts,
    )
    print(f"boxgym scripted engine on http://{args.host}:{args.port}", file=sys.stderr)
    web.run_app(
        create_engine_app(config),
        host=args.host,
        port=args.port,
        handler_cancellation=True,
        access_log=None,
        print=None,
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from boxgym.gateway import LossRule, read_calls, training_view, view_to_json

    view = training_view(read_calls(args.store, args.episode), args.episode, loss_rule=LossRule(args.loss_rule))
    if not view.sequences and not view.skipped:
        print(f"no records of episode {args.episode!r} in {args.store}", file=sys.stderr)
        return 1
    text = json.dumps(view_to_json(view))
    if args.out == "-":
        print(text)
    else:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return 0


def run(args: argparse.Namespace) -> int:
    return {"serve": _serve, "mock-engine": _mock, "export": _export}[args.gateway_command](args)
