"""The Code suite: write a Python function to a spec; judged by hidden unit tests.

Procedural tasks in four levels, each a family of function specs whose
constants and test inputs come from the seed. The expected outputs are
computed by running the family's reference implementation on the host, so
they are right by construction; the reference solution is that
implementation written to ``solution.py``, then ``submit``.

=====  ====================================================================
level  families
=====  ====================================================================
0      affine map, clamp, digit sum in base b
1      Caesar shift, run-length encoding, reverse words
2      merge intervals, top-k words, group anagrams
3      reverse-Polish evaluation, longest increasing subsequence, spiral order
=====  ====================================================================

A user's own problems come as JSONL (:meth:`StaticTaskSet.from_jsonl`).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...judges.unittests import HiddenTests
from ...toolsets.calls import ToolCall
from ..tasks import ProceduralTaskSet, Task

__all__ = ["LEVELS", "SYSTEM_PROMPT", "generate", "task_set"]

SYSTEM_PROMPT = (
    "You are a software engineer working in a Linux sandbox with no network access. "
    "Use the tools to write and test code in the working directory; python3 (standard library only) is "
    "installed. When the work is complete, call submit."
)


@dataclass(frozen=True, slots=True)
class _Spec:
    function: str
    signature: str
    description: str
    source: str  # the reference implementation
    cases: tuple[tuple[Any, ...], ...]  # argument tuples


def _affine(rng: np.random.Generator) -> _Spec:
    a, b = int(rng.integers(2, 10)), int(rng.integers(-20, 21))
    cases = tuple((int(x),) for x in rng.integers(-1000, 1000, size=8)) + ((0,),)
    return _Spec(
        "transform",
        "transform(x: int) -> int",
        f"Return {a} * x + ({b}).",
        f"def transform(x):\n    return {a} * x + ({b})\n",
        cases,
    )


def _clamp(rng: np.random.Generator) -> _Spec:
    lo = int(rng.integers(-50, 0))
    hi = lo + int(rng.integers(10, 100))
    cases = tuple((int(x),) for x in rng.integers(lo - 100, hi + 100, size=8)) + ((lo,), (hi,), (lo - 1,), (hi + 1,))
    return _Spec(
        "clamp",
        "clamp(x: int) -> int",
        f"Return x limited to the range [{lo}, {hi}]: {lo} if x is below it, {hi} if above, else x.",
        f"def clamp(x):\n    return max({lo}, min({hi}, x))\n",
        cases,
    )


def _words(rng: np.random.Generator, count: int, alphabet: str = "abcde") -> list[str]:
    return ["".join(rng.choice(list(alphabet), size=int(rng.integers(1, 4)))) for _ in range(count)]


def _caesar(rng: np.random.Generator) -> _Spec:
    k = int(rng.integers(1, 26))
    texts = [" ".join(_words(rng, 4, string.ascii_letters)) + "!" for _ in range(6)] + ["", "Zz Aa, 123."]
    return _Spec(
        "shift",
        "shift(text: str) -> str",
        f"Shift every ASCII letter {k} places forward in the alphabet, wrapping around and keeping its case; "
        "leave every other character unchanged.",
        "def shift(text):\n"
        "    out = []\n"
        "    for ch in text:\n"
        "        if 'a' <= ch <= 'z':\n"
        f"            out.append(chr((ord(ch) - 97 + {k}) % 26 + 97))\n"
        "        elif 'A' <= ch <= 'Z':\n"
        f"            out.append(chr((ord(ch) - 65 + {k}) % 26 + 65))\n"
        "        else:\n"
        "            out.append(ch)\n"
        "    return ''.join(out)\n",
        tuple((t,) for t in texts),
    )


def _rle(rng: np.random.Generator) -> _Spec:
    texts = ["".join(rng.choice(list("aab"), size=int(rng.integers(1, 15)))) for _ in range(7)] + ["", "zzzz"]
    return _Spec(
        "encode",
        "encode(text: str) -> str",
        "Run-length encode text: each maximal run of one character becomes the character followed by the run's "
        'length in decimal, e.g. "aaab" -> "a3b1". The empty string encodes to "".',
        "def encode(text):\n"
        "    out, i = [], 0\n"
        "    while i < len(text):\n"
        "        j = i\n"
        "        while j < len(text) and text[j] == text[i]:\n"
        "            j += 1\n"
        "        out.append(f'{text[i]}{j - i}')\n"
        "        i = j\n"
        "    return ''.join(out)\n",
        tuple((t,) for t in texts),
    )


def _merge(rng: np.random.Generator) -> _Spec:
    cases = []
    for _ in range(7):
        starts = rng.integers(0, 40, size=int(rng.integers(0, 7)))
        cases.append(([[int(s), int(s + rng.integers(0, 8))] for s in starts],))
    cases.append(([[1, 3], [3, 5]],))
    return _Spec(
        "merge",
        "merge(intervals: list[list[int]]) -> list[list[int]]",
        "Each interval is [start, end] with start <= end, in any order. Merge intervals that overlap or touch "
        "(share an endpoint) and return the result sorted by start, as a list of [start, end] lists.",
        "def merge(intervals):\n"
        "    out = []\n"
        "    for start, end in sorted(intervals):\n"
        "        if out and start <= out[-1][1]:\n"
        "            out[-1][1] = max(out[-1][1], end)\n"
        "        else:\n"
        "            out.append([start, end])\n"
        "    return out\n",
        tuple(cases),
    )


def _top_words(rng: np.random.Generator) -> _Spec:
    cases = []
    for _ in range(7):
        words = _words(rng, int(rng.integers(1, 20)), "abcAB")
        cases.append((" ".join(words) + " ", int(rng.integers(1, 4))))
    return _Spec(
        "top_words",
        "top_words(text: str, k: int) -> list[str]",
        "Split text on whitespace, lower-case each word, and return the k most frequent words, most frequent "
        "first; break ties alphabetically. Return fewer than k if there are fewer distinct words.",
        "from collections import Counter\n\n\n"
        "def top_words(text, k):\n"
        "    counts = Counter(w.lower() for w in text.split())\n"
        "    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]\n",
        tuple(cases),
    )


_RPN_SOURCE = (
    "def eval_rpn(tokens):\n"
    "    stack = []\n"
    "    for tok in tokens:\n"
    "        if tok in ('+', '-', '*', '/'):\n"
    "            b, a = stack.pop(), stack.pop()\n"
    "            if tok == '+':\n"
    "                stack.append(a + b)\n"
    "            elif tok == '-':\n"
    "                stack.append(a - b)\n"
    "            elif tok == '*':\n"
    "                stack.append(a * b)\n"
    "            else:\n"
    "                q = abs(a) // abs(b)\n"
    "                stack.append(q if (a >= 0) == (b > 0) else -q)\n"
    "        else:\n"
    "            stack.append(int(tok))\n"
    "    return stack[-1]\n"
)


def _rpn(rng: np.random.Generator) -> _Spec:
    namespace: dict[str, Any] = {}
    exec(_RPN_SOURCE, namespace)
    cases: list[tuple[list[str]]] = []
    while len(cases) < 7:
        stack_size, tokens = 0, []
        for _ in range(int(rng.integers(1, 8))):
            if stack_size >= 2 and rng.random() < 0.5:
                tokens.append(str(rng.choice(["+", "-", "*", "/"])))
                stack_size -= 1
            else:
                tokens.append(str(int(rng.integers(-9, 10)) or 7))
                stack_size += 1
        while stack_size > 1:
            tokens.append(str(rng.choice(["+", "-", "*"])))
            stack_size -= 1
        try:
            namespace["eval_rpn"](tokens)
        except ZeroDivisionError:  # the spec promises inputs that never divide by zero
            continue
        cases.append((tokens,))
    cases.append((["7", "-2", "/"],))
    return _Spec(
        "eval_rpn",
        "eval_rpn(tokens: list[str]) -> int",
        'Evaluate a reverse-Polish expression of integers and the operators "+", "-", "*", "/". Division '
        "truncates toward zero (7 / -2 == -3). The input is always well formed and never divides by zero.",
        _RPN_SOURCE,
        tuple(cases),
    )


def _lis(rng: np.random.Generator) -> _Spec:
    cases = tuple(([int(x) for x in rng.integers(-20, 20, size=int(rng.integers(0, 16)))],) for _ in range(8))
    return _Spec(
        "lis_length",
        "lis_length(nums: list[int]) -> int",
        "Return the length of the longest strictly increasing subsequence of nums (0 for an empty list).",
        "import bisect\n\n\n"
        "def lis_length(nums):\n"
        "    tails = []\n"
        "    for x in nums:\n"
        "        i = bisect.bisect_left(tails, x)\n"
        "        tails[i:i + 1] = [x]\n"
        "    return len(tails)\n",
        cases + (([3, 1, 2, 2, 5, 4],),),
    )


def _digit_sum(rng: np.random.Generator) -> _Spec:
    base = int(rng.integers(2, 11))
    cases = tuple((int(x),) for x in rng.integers(-(10**6), 10**6, size=8)) + ((0,),)
    return _Spec(
        "digit_sum",
        "digit_sum(n: int) -> int",
        f"Return the sum of the digits of the absolute value of n written in base {base} (0 for n == 0).",
        "def digit_sum(n):\n"
        "    n, total = abs(n), 0\n"
        "    while n:\n"
        f"        n, digit = divmod(n, {base})\n"
        "        total += digit\n"
        "    return total\n",
        cases,
    )


def _reverse_words(rng: np.random.Generator) -> _Spec:
    sep = str(rng.choice([" ", ", ", " | "]))
    texts = ["  ".join(_words(rng, int(rng.integers(1, 6)), string.ascii_letters)) + " " for _ in range(7)] + ["   "]
    return _Spec(
        "reverse_words",
        "reverse_words(text: str) -> str",
        f"Split text on runs of whitespace and return its words in reverse order joined by {sep!r} "
        "(the empty string when there are no words).",
        f"def reverse_words(text):\n    return {sep!r}.join(reversed(text.split()))\n",
        tuple((t,) for t in texts),
    )


def _anagrams(rng: np.random.Generator) -> _Spec:
    cases = []
    for _ in range(7):
        roots = _words(rng, int(rng.integers(1, 4)), "abcd")
        words = ["".join(rng.permutation(list(r))) for r in roots for _ in range(int(rng.integers(1, 3)))]
        cases.append((words,))
    return _Spec(
        "group_anagrams",
        "group_anagrams(words: list[str]) -> list[list[str]]",
        "Group words that are anagrams of each other (same letters, same counts). Sort the words inside each "
        "group, keep duplicates, and order the groups by their first word.",
        "def group_anagrams(words):\n"
        "    groups = {}\n"
        "    for word in words:\n"
        "        groups.setdefault(''.join(sorted(word)), []).append(word)\n"
        "    return sorted(sorted(group) for group in groups.values())\n",
        tuple(cases),
    )


def _spiral(rng: np.random.Generator) -> _Spec:
    cases = []
    for _ in range(7):
        rows, cols = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        cases.append(([[int(x) for x in rng.integers(0, 50, size=cols)] for _ in range(rows)],))
    cases.append(([],))
    return _Spec(
        "spiral",
        "spiral(matrix: list[list[int]]) -> list[int]",
        "Return the elements of a rectangular matrix (a list of equal-length rows, possibly empty) in clockwise "
        "spiral order, starting at the top-left corner and going right first.",
        "def spiral(matrix):\n"
        "    out = []\n"
        "    rows = [list(r) for r in matrix]\n"
        "    while rows:\n"
        "        out += rows.pop(0)\n"
        "        rows = [list(r) for r in zip(*rows)][::-1]\n"
        "    return out\n",
        tuple(cases),
    )


LEVELS: tuple[tuple[Callable[[np.random.Generator], _Spec], ...], ...] = (
    (_affine, _clamp, _digit_sum),
    (_caesar, _rle, _reverse_words),
    (_merge, _top_words, _anagrams),
    (_rpn, _lis, _spiral),
)


def _tests(spec: _Spec) -> str:
    namespace: dict[str, Any] = {}
    exec(spec.source, namespace)  # our own reference code: the expected values
    reference = namespace[spec.function]
    lines = [
        "import unittest",
        f"from solution import {spec.function}",
        "",
        "",
        "class HiddenTests(unittest.TestCase):",
    ]
    for index, args in enumerate(spec.cases):
        expected = reference(*[list(a) if isinstance(a, list) else a for a in args])
        lines += [
            f"    def test_{index}(self):",
            f"        got = {spec.function}(*{args!r})",
            f"        self.assertIs(type(got), {type(expected).__name__})",
            f"        self.assertEqual(got, {expected!r})",
            "",
        ]
    return "\n".join(lines)


def generate(seed: int, level: int) -> Task:
    rng = np.random.default_rng(seed)
    families = LEVELS[level]
    spec = families[int(rng.integers(0, len(families)))](rng)
    prompt = (
        f"Create the file `solution.py` in the working directory. It must define\n\n"
        f"    def {spec.signature}\n\n{spec.description}\n\n"
        "Hidden unit tests will import the function from `solution` and call it; use only the standard "
        "library. Call submit when you are done."
    )
    return Task(
        id=f"code/d{level}/s{seed}",
        prompt=prompt,
        oracle=HiddenTests(_tests(spec)),
        reference=(
            ToolCall("ref_0", "write_file", {"path": "solution.py", "content": spec.source}),
            ToolCall("ref_1", "submit", {}),
        ),
        difficulty=level,
        metadata={"suite": "code", "family": spec.function},
    )


def task_set() -> ProceduralTaskSet:
    return ProceduralTaskSet("code", generate, len(LEVELS))
