"""Hidden-test runner: executed *inside the sandbox* as root by :mod:`boxgym.judges.unittests`.

Stdlib only, Python 3.11, started as ``python3 -I -S -c <this file>`` with a
JSON payload on stdin: ``tests`` (unittest source), ``module`` (the name the
tests import), ``workdir``, ``agent_uid``, ``call_timeout``, ``nonce``.

The tests run *here*, in a process the agent's code never enters. The agent's
module is imported in a child process (dropped to the agent's uid) and the
tests reach it through a proxy module: every attribute read and function call
is a request over a private pipe, and every value comes back as tagged JSON,
decoded here into plain builtin objects. So the agent's code cannot patch
``unittest``, see the expected values, exit this process, or hand back an
object whose ``__eq__`` lies: what arrives is an ``int``, a ``list``, a ``str``.

Exit status: 0 every test passed, 1 some failed (or the module could not be
loaded), 2 the harness itself failed. The verdict is the last stdout line,
echoing the nonce. Nothing here is parsed from the agent's output.
"""

import builtins
import io
import json
import os
import select
import subprocess
import sys
import time
import types
import unittest

CODEC = r"""
import base64


def enc(v, depth=0):
    if depth > 64:
        raise ValueError("value nested too deeply")
    t = type(v)
    if v is None or t is bool or t is int or t is str:
        return v
    if t is float:
        return v if v == v and v not in (float("inf"), float("-inf")) else {"f": repr(v)}
    if t is list:
        return {"l": [enc(x, depth + 1) for x in v]}
    if t is tuple:
        return {"t": [enc(x, depth + 1) for x in v]}
    if t is dict:
        return {"d": [[enc(k, depth + 1), enc(x, depth + 1)] for k, x in v.items()]}
    if t is set:
        return {"s": [enc(x, depth + 1) for x in v]}
    if t is frozenset:
        return {"fs": [enc(x, depth + 1) for x in v]}
    if t is bytes:
        return {"b": base64.b64encode(v).decode()}
    raise TypeError(
        f"cannot pass a value of type {t.__name__}: only None, bool, int, float, str, bytes, "
        "list, tuple, dict, set and frozenset cross to the tests"
    )


def dec(v, depth=0):
    if depth > 64:
        raise ValueError("value nested too deeply")
    t = type(v)
    if v is None or t is bool or t is int or t is float or t is str:
        return v
    if t is dict and len(v) == 1:
        ((tag, x),) = v.items()
        if tag == "f" and x in ("nan", "inf", "-inf"):
            return float(x)
        if tag == "b" and type(x) is str:
            return base64.b64decode(x, validate=True)
        if type(x) is list:
            if tag == "l":
                return [dec(i, depth + 1) for i in x]
            if tag == "t":
                return tuple(dec(i, depth + 1) for i in x)
            if tag == "s":
                return {dec(i, depth + 1) for i in x}
            if tag == "fs":
                return frozenset(dec(i, depth + 1) for i in x)
            if tag == "d" and all(type(p) is list and len(p) == 2 for p in x):
                return {dec(k, depth + 1): dec(i, depth + 1) for k, i in x}
    raise ValueError("malformed value")
"""

STUB = (
    CODEC
    + r"""
import importlib
import json
import os
import sys

sys.path.insert(0, os.getcwd())
reader = os.fdopen(int(sys.argv[1]), "rb")
writer = os.fdopen(int(sys.argv[2]), "wb")
module = None
for line in reader:
    try:
        request = json.loads(line)
        if module is None:
            module = importlib.import_module(sys.argv[3])
        value = getattr(module, request["name"])
        if request["op"] == "getattr":
            response = {"callable": True} if callable(value) else {"value": enc(value)}
        else:
            args = [dec(a) for a in request["args"]]
            kwargs = {k: dec(a) for k, a in request["kwargs"].items()}
            response = {"value": enc(value(*args, **kwargs))}
    except BaseException as exc:
        response = {"error": [type(exc).__name__, str(exc)[:2000]]}
    writer.write(json.dumps(response).encode() + b"\n")
    writer.flush()
"""
)

_codec: dict = {}
exec(CODEC, _codec)  # the child runs the same source, so both sides speak the same tags
enc, dec = _codec["enc"], _codec["dec"]

MAX_RESPONSE = 16 * 1024 * 1024
MAX_SPAWNS = 25  # a solution that crashes on every call must not keep the judge busy forever


class RemoteError(Exception):
    """The solution raised an exception that is not a builtin one."""


class SolutionGone(Exception):
    """The solution's process died, hung past the call timeout, or broke the protocol."""


class Child:
    """The agent's module, in its own process, at the agent's uid."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.proc = None
        self.spawns = 0
        self.failures = 0  # anything the solution did wrong, used to blame load errors correctly
        self.answered = False  # the current process answered at least once
        self.fatal = None  # why no new process is worth starting

    def start(self):
        if self.fatal is not None:
            raise SolutionGone(self.fatal)
        if self.spawns >= MAX_SPAWNS:
            raise SolutionGone("the solution died too many times")
        self.spawns += 1
        self.answered = False
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        extra = {}
        if self.cfg["agent_uid"] is not None:
            uid = self.cfg["agent_uid"]
            extra = {"user": uid, "group": uid, "extra_groups": []}
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": self.cfg["workdir"], "LANG": "C.UTF-8"}
        try:
            self.proc = self._spawn(req_r, resp_w, env, extra)
        except BaseException:
            for fd in (req_r, req_w, resp_r, resp_w):
                os.close(fd)
            raise
        try:
            # If the solution exhausts the sandbox's memory, the kernel must kill it, not us.
            with open(f"/proc/{self.proc.pid}/oom_score_adj", "w") as fh:
                fh.write("1000")
        except OSError:
            pass
        os.close(req_r)
        os.close(resp_w)
        os.set_blocking(req_w, False)
        self.w, self.r, self.buf = req_w, resp_r, b""

    def _spawn(self, req_r, resp_w, env, extra):
        return subprocess.Popen(
            [sys.executable, "-I", "-c", STUB, str(req_r), str(resp_w), self.cfg["module"]],
            cwd=self.cfg["workdir"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(req_r, resp_w),
            start_new_session=True,
            **extra,
        )

    def stop(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        os.close(self.w)
        os.close(self.r)
        self.proc = None

    def request(self, request):
        deadline = time.monotonic() + self.cfg["call_timeout"]
        try:
            if self.proc is None:
                # Inside the try: a work directory the agent made unusable (chmod 000,
                # deleted) is the solution failing, not the harness.
                self.start()
            self._send((json.dumps(request) + "\n").encode(), deadline)
            response = json.loads(self._readline(deadline))
            if type(response) is not dict:
                raise SolutionGone("the solution broke the protocol")
        except Exception as exc:  # noqa: BLE001 - whatever the child sent or did (deep JSON, huge ints) is its failure
            self.failures += 1
            if not self.answered:
                # It died or hung before answering anything (at import): every
                # restart would do the same, so fail the remaining tests at once.
                self.fatal = f"the solution's process failed before answering: {exc}"
            self.stop()
            raise SolutionGone(f"the solution's process failed: {exc}") from None
        self.answered = True
        if "error" in response:
            self.failures += 1
            name, message = (list(response["error"]) + ["", ""])[:2]
            cls = getattr(builtins, str(name), None)
            if isinstance(cls, type) and issubclass(cls, Exception):
                raise cls(str(message))
            raise RemoteError(f"{name}: {message}")
        return response

    def _send(self, data, deadline):
        while data:
            if not select.select([], [self.w], [], max(deadline - time.monotonic(), 0))[1]:
                raise SolutionGone("call timed out")
            data = data[os.write(self.w, data) :]

    def _readline(self, deadline):
        while b"\n" not in self.buf:
            if not select.select([self.r], [], [], max(deadline - time.monotonic(), 0))[0]:
                raise SolutionGone(f"call timed out after {self.cfg['call_timeout']}s")
            chunk = os.read(self.r, 1 << 16)
            if not chunk:
                raise SolutionGone("the solution's process exited")
            self.buf += chunk
            if len(self.buf) > MAX_RESPONSE:
                raise SolutionGone("response too large")
        line, _, self.buf = self.buf.partition(b"\n")
        return line


def proxy_module(child, name):
    module = types.ModuleType(name)

    def remote_function(attr):
        def call(*args, **kwargs):
            payload = {"op": "call", "name": attr, "args": [enc(a) for a in args]}
            payload["kwargs"] = {str(k): enc(v) for k, v in kwargs.items()}
            response = child.request(payload)
            try:
                return dec(response.get("value"))
            except (ValueError, TypeError, AttributeError) as exc:
                child.failures += 1
                raise SolutionGone(f"malformed return value: {exc}") from None

        call.__name__ = attr
        return call

    def getattr_(attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        response = child.request({"op": "getattr", "name": attr})
        if response.get("callable") is True:
            return remote_function(attr)
        try:
            return dec(response.get("value"))
        except (ValueError, TypeError, AttributeError) as exc:
            child.failures += 1
            raise SolutionGone(f"malformed value: {exc}") from None

    module.__getattr__ = getattr_
    return module


def test_ids(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from test_ids(item)
        else:
            yield item


def main():
    real_stdout = os.dup(1)
    cfg = json.loads(sys.stdin.read())
    verdict = {"nonce": cfg["nonce"], "total": 0, "passed": 0, "tests": [], "load_error": None, "harness_error": None}
    child = Child(cfg)
    status = 2
    sys.stdout = sys.stderr = io.StringIO()  # the tests' own prints must not mix with the verdict
    try:
        code = compile(cfg["tests"], "<hidden tests>", "exec")
        sys.modules[cfg["module"]] = proxy_module(child, cfg["module"])
        tests = types.ModuleType("hidden_tests")
        try:
            exec(code, tests.__dict__)
        except Exception as exc:
            if not child.failures:
                raise  # the tests themselves are broken: not the agent's fault
            verdict["load_error"] = f"{type(exc).__name__}: {exc}"[:2000]
            status = 1
        else:
            suite = unittest.defaultTestLoader.loadTestsFromModule(tests)
            ids = [test.id() for test in test_ids(suite)]  # a suite forgets its tests once run
            result = unittest.TestResult()
            suite.run(result)
            bad = {}
            for kind, items in (("fail", result.failures), ("error", result.errors), ("skip", result.skipped)):
                for test, detail in items:
                    bad[test.id()] = (kind, detail[-2000:])
            for test, detail in result.expectedFailures:
                bad[test.id()] = ("expected_failure", detail[-2000:])
            for test in result.unexpectedSuccesses:
                bad[test.id()] = ("unexpected_success", "")
            for test_id in ids:
                kind, detail = bad.get(test_id, ("pass", ""))
                verdict["tests"].append({"id": test_id, "outcome": kind, "detail": detail})
            verdict["total"] = len(verdict["tests"])
            verdict["passed"] = sum(t["outcome"] == "pass" for t in verdict["tests"])
            status = 0 if verdict["total"] and verdict["passed"] == verdict["total"] else 1
    except BaseException:  # noqa: BLE001 - the harness reports its own failure, whatever it is
        import traceback

        verdict["harness_error"] = traceback.format_exc()[-2000:]
        status = 2
    finally:
        child.stop()
    os.write(real_stdout, (json.dumps(verdict) + "\n").encode())
    os._exit(status)  # no atexit hooks, no flushing of anything the tests redirected


if __name__ == "__main__":
    main()
