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

``from solution import *`` binds the solution's public functions and plain
values (its ``__all__``, if it has one), except names that are Python
builtins or that the tests bound before the import: a solution cannot replace
``len`` or a helper of the tests.

Each test's outcome is its own: a failing ``subTest`` fails its test, a test
that a failing ``setUpClass`` kept from running fails, and the failing fixture
is a failed check of its own. Failure details show only frames of the tests
and of the solution (sent back by the child), never this harness's or
unittest's.

Exit status: 0 every test passed, 1 some failed (or the module could not be
loaded), 2 the tests broke on their own (``tests_error``) or the harness
failed (``harness_error``). The verdict is the last stdout line,
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
import traceback
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
import linecache
import os
import sys

STUB_GLOBALS = globals()


def public_names(module):
    names = getattr(module, "__all__", None)
    if type(names) not in (list, tuple) or not all(type(n) is str for n in names):
        names = [n for n in vars(module) if not n.startswith("_")]
    public = []
    for name in names:
        try:
            value = getattr(module, name)
            if not callable(value):
                enc(value)
        except Exception:
            continue  # nothing the tests could use: a module, an instance, a compiled pattern
        public.append(name)
    return public


def solution_frames(tb):
    # Leave out this stub, the import_module call that loads the solution, and the frozen
    # import machinery between modules, as Python's own tracebacks of imports do.
    frames = []
    while tb is not None:
        code = tb.tb_frame.f_code
        ours = tb.tb_frame.f_globals is STUB_GLOBALS or (not frames and code.co_filename == importlib.__file__)
        if not ours and not code.co_filename.startswith("<frozen "):
            line = linecache.getline(code.co_filename, tb.tb_lineno).strip()
            frames.append([code.co_filename, tb.tb_lineno, code.co_name, line[:200]])
        tb = tb.tb_next
    return frames[-30:]


sys.path.insert(0, os.getcwd())
reader = os.fdopen(int(sys.argv[1]), "rb")
writer = os.fdopen(int(sys.argv[2]), "wb")
module = None
for line in reader:
    try:
        request = json.loads(line)
        if module is None:
            module = importlib.import_module(sys.argv[3])
        if request["op"] == "names":
            response = {"names": public_names(module)}
        else:
            value = getattr(module, request["name"])
            if request["op"] == "getattr":
                response = {"callable": True} if callable(value) else {"value": enc(value)}
            else:
                args = [dec(a) for a in request["args"]]
                kwargs = {k: dec(a) for k, a in request["kwargs"].items()}
                response = {"value": enc(value(*args, **kwargs))}
    except BaseException as exc:
        response = {"error": [type(exc).__name__, str(exc)[:2000]], "trace": solution_frames(exc.__traceback__)}
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
            raise remote_exception(response)
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


def remote_exception(response):
    """The solution's exception as a builtin one (or a RemoteError), carrying the solution's frames."""
    name, message = (list(response["error"]) + ["", ""])[:2]
    cls = getattr(builtins, str(name), None)
    exc = None
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            exc = cls(str(message))
        except Exception:  # noqa: BLE001 - a builtin that takes other arguments (UnicodeDecodeError)
            exc = None
    if exc is None:
        exc = RemoteError(f"{name}: {message}")
    exc.solution_frames = solution_frames(response.get("trace"))
    return exc


def solution_frames(trace):
    """The frames the child reported, as FrameSummary objects; whatever is malformed is dropped."""
    frames = []
    for item in trace if type(trace) is list else ():
        if type(item) is list and len(item) == 4 and [type(x) for x in item] == [str, int, str, str]:
            filename, lineno, function, line = item
            frames.append(traceback.FrameSummary(filename[:300], lineno, function[:100], lookup_line=False, line=line[:300]))
    return frames[-30:]


def star_names(child, namespace):
    """What ``from <module> import *`` binds: the solution's public names, minus builtins and the tests' own."""
    names = child.request({"op": "names"}).get("names")
    if type(names) is not list or len(names) > 10_000 or not all(type(n) is str and n.isidentifier() for n in names):
        child.failures += 1
        raise SolutionGone("the solution's process sent malformed names")
    return [n for n in names if not n.startswith("__") and n not in namespace and not hasattr(builtins, n)]


def proxy_module(child, name, namespace):
    """The module the tests import: every read and call goes to the child. ``namespace`` is the tests'."""
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
        if attr == "__all__":  # read by a star import
            return star_names(child, namespace)
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


HARNESS = globals()


def is_harness_frame(frame):
    """A frame of this runner, of its codec, or of unittest itself (which marks its modules ``__unittest``)."""
    scope = frame.f_globals
    return scope is HARNESS or scope is _codec or "__unittest" in scope


def without_harness_frames(tb):
    kept = []
    while tb is not None:
        if not is_harness_frame(tb.tb_frame):
            kept.append(tb)
        tb = tb.tb_next
    cleaned = None
    for entry in reversed(kept):
        cleaned = types.TracebackType(cleaned, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return cleaned


def describe(exc):
    """``exc`` as a traceback of the tests' frames and then the solution's, and nothing else."""
    seen, chain = set(), [exc]
    while chain:
        link = chain.pop()
        if link is not None and id(link) not in seen:
            seen.add(id(link))
            link.__traceback__ = without_harness_frames(link.__traceback__)
            chain += [link.__cause__, link.__context__]
    report = traceback.TracebackException.from_exception(exc)
    add_solution_frames(report, exc)
    return "".join(report.format()).rstrip("\n")[-2000:]


def add_solution_frames(report, exc):
    report.stack.extend(getattr(exc, "solution_frames", ()))
    for link in ("__cause__", "__context__"):
        if getattr(report, link) is not None:
            add_solution_frames(getattr(report, link), getattr(exc, link))


def test_ids(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from test_ids(item)
        else:
            yield item


class Outcomes(unittest.TestResult):
    """Each test's own outcome: pass only when unittest reported its success and nothing else.

    A failing subtest fails its test; a class or module fixture that fails (or skips) is a
    failed check of its own, and the tests it kept from running fail as not run.
    """

    def __init__(self):
        super().__init__()
        self.outcomes = {}  # test id -> (outcome, detail); the first thing that went wrong wins
        self.fixtures = []  # (description, outcome, detail) of failed class and module fixtures

    def bad(self, test, outcome, detail):
        if not isinstance(test, unittest.TestCase):  # an _ErrorHolder: setUpClass, tearDownModule, ...
            self.fixtures.append((test.id(), outcome, detail))
            return
        test = getattr(test, "test_case", test)  # a subtest (skipped, say) counts for its test
        if self.outcomes.get(test.id(), ("pass",))[0] == "pass":
            self.outcomes[test.id()] = (outcome, detail)

    def addSuccess(self, test):
        self.outcomes.setdefault(test.id(), ("pass", ""))

    def addFailure(self, test, err):
        self.bad(test, "fail", describe(err[1]))

    def addError(self, test, err):
        self.bad(test, "error", describe(err[1]))

    def addSubTest(self, test, subtest, err):
        if err is not None:
            outcome = "fail" if issubclass(err[0], test.failureException) else "error"
            self.bad(test, outcome, f"subtest {subtest.id()[len(test.id()):].strip()}:\n{describe(err[1])}")

    def addSkip(self, test, reason):
        self.bad(test, "skip", reason)

    def addExpectedFailure(self, test, err):
        self.bad(test, "expected_failure", describe(err[1]))

    def addUnexpectedSuccess(self, test):
        self.bad(test, "unexpected_success", "")

    def checks(self, ids):
        not_run = ("error", "did not run" + (f" ({self.fixtures[0][0]} failed)" if self.fixtures else ""))
        checks = []
        for test_id in ids:
            outcome, detail = self.outcomes.get(test_id, not_run)
            checks.append({"id": test_id, "outcome": outcome, "detail": detail})
        for name, outcome, detail in self.fixtures:
            checks.append({"id": name, "outcome": outcome, "detail": detail})
        return checks


def run_tests(tests):
    suite = unittest.defaultTestLoader.loadTestsFromModule(tests)
    ids = [test.id() for test in test_ids(suite)]  # a suite forgets its tests once run
    result = Outcomes()
    suite.run(result)
    return result.checks(ids)


def main():
    real_stdout = os.dup(1)
    cfg = json.loads(sys.stdin.read())
    verdict = {"nonce": cfg["nonce"], "total": 0, "passed": 0, "tests": [], "load_error": None, "tests_error": None,
               "harness_error": None}  # fmt: skip
    child = Child(cfg)
    status = 2
    sys.stdout = sys.stderr = io.StringIO()  # the tests' own prints must not mix with the verdict
    try:
        code = compile(cfg["tests"], "<hidden tests>", "exec")
        tests = types.ModuleType("hidden_tests")
        sys.modules[cfg["module"]] = proxy_module(child, cfg["module"], tests.__dict__)
        try:
            exec(code, tests.__dict__)
        except Exception as exc:
            if child.failures:
                verdict["load_error"] = describe(exc)
                status = 1
            else:  # the tests broke with no part of the solution in it: the task is broken
                verdict["tests_error"] = describe(exc)
                status = 2
        else:
            verdict["tests"] = run_tests(tests)
            verdict["total"] = len(verdict["tests"])
            verdict["passed"] = sum(t["outcome"] == "pass" for t in verdict["tests"])
            status = 0 if verdict["total"] and verdict["passed"] == verdict["total"] else 1
    except BaseException:  # noqa: BLE001 - the harness reports its own failure, whatever it is
        verdict["harness_error"] = traceback.format_exc()[-2000:]
        status = 2
    finally:
        child.stop()
    os.write(real_stdout, (json.dumps(verdict) + "\n").encode())
    os._exit(status)  # no atexit hooks, no flushing of anything the tests redirected


if __name__ == "__main__":
    main()
