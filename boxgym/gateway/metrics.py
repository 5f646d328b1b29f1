"""Prometheus text-format metrics, without a client library (a counter is an int; a histogram
is a list of bucket counts): the request path pays a dict lookup and a bisect, nothing more."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict

__all__ = ["Metrics"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class _Histogram:
    __slots__ = ("counts", "total", "n")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BUCKETS) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(_BUCKETS, seconds)] += 1
        self.total += seconds
        self.n += 1


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}" if pairs else ""


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        self.errors: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        self.tokens: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        self.latency: dict[tuple[tuple[str, str], ...], _Histogram] = defaultdict(_Histogram)
        self.upstream_latency: dict[tuple[tuple[str, str], ...], _Histogram] = defaultdict(_Histogram)
        self.replays = 0
        self.records = 0
        self.prefix: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)

    @classmethod
    def merged(cls, parts: list[Metrics]) -> Metrics:
        """The sum of several workers' metrics: what one process serving all of it would count."""
        total = cls()
        for m in parts:
            for mine, theirs in (
                (total.requests, m.requests),
                (total.errors, m.errors),
                (total.tokens, m.tokens),
                (total.prefix, m.prefix),
            ):
                for k, v in theirs.items():
                    mine[k] += v
            for mine_h, theirs_h in ((total.latency, m.latency), (total.upstream_latency, m.upstream_latency)):
                for k, h in theirs_h.items():
                    into = mine_h[k]
                    into.counts = [a + b for a, b in zip(into.counts, h.counts)]
                    into.total += h.total
                    into.n += h.n
            total.replays += m.replays
            total.records += m.records
        return total

    def observe(
        self,
        endpoint: str,
        status: int,
        stream: bool,
        total_s: float,
        upstream_s: float | None,
        prompt_tokens: int,
        completion_tokens: int,
        prefix: str,
        error_type: str | None,
    ) -> None:
        ep = ("endpoint", endpoint)
        self.requests[(ep, ("status", str(status)), ("stream", "true" if stream else "false"))] += 1
        self.latency[(ep, ("stream", "true" if stream else "false"))].observe(total_s)
        if upstream_s is not None:
            self.upstream_latency[(ep,)].observe(upstream_s)
        if error_type is not None:
            self.errors[(ep, ("type", error_type))] += 1
        if prompt_tokens:
            self.tokens[(("kind", "prompt"),)] += prompt_tokens
        if completion_tokens:
            self.tokens[(("kind", "completion"),)] += completion_tokens
        self.prefix[(("kind", prefix),)] += 1
        self.records += 1

    def render(self) -> str:
        out: list[str] = []

        def counter(name: str, help_: str, values: dict) -> None:
            out.append(f"# HELP {name} {help_}\n# TYPE {name} counter")
            out.extend(f"{name}{_labels(k)} {v}" for k, v in sorted(values.items()))

        def histogram(name: str, help_: str, values: dict) -> None:
            out.append(f"# HELP {name} {help_}\n# TYPE {name} histogram")
            for k, h in sorted(values.items()):
                acc = 0
                for bound, c in zip((*_BUCKETS, float("inf")), h.counts):
                    acc += c
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    out.append(f"{name}_bucket{_labels(k + (('le', le),))} {acc}")
                out.append(f"{name}_sum{_labels(k)} {h.total}")
                out.append(f"{name}_count{_labels(k)} {h.n}")

        counter("boxgym_gateway_requests_total", "Calls answered, by endpoint, status and streaming.", self.requests)
        counter("boxgym_gateway_errors_total", "Calls that failed, by endpoint and error type.", self.errors)
        counter("boxgym_gateway_tokens_total", "Tokens recorded, prompt and completion.", self.tokens)
        counter("boxgym_gateway_prefix_checks_total", "Prefix-check verdicts.", self.prefix)
        counter("boxgym_gateway_replays_total", "SDK retries answered from the record.", {(): self.replays})
        counter("boxgym_gateway_records_total", "Records written.", {(): self.records})
        histogram("boxgym_gateway_request_seconds", "Time from request to record written.", self.latency)
        histogram("boxgym_gateway_upstream_seconds", "Time spent waiting for the engine.", self.upstream_latency)
        return "\n".join(out) + "\n"
