"""Context strategies for long episodes, and the record of what a policy call was shown.

An episode's history is its initial messages (system, task) and then one *round* per step: the
assistant's message and the observation the env answered it with (tool messages, an image
message, feedback). Past a token threshold a strategy cuts the history at a step, ``from_step``:

* :class:`HideToolResults` (Kimi K2.5 on HLE): every round before ``from_step`` keeps its
  assistant message (the reasoning and the calls) but its tool results are replaced by a short
  placeholder; the latest round (``from_step``) and what follows are shown whole.
* :class:`DiscardAll` (K2.5 on BrowseComp): every round before ``from_step`` is dropped; the model
  restarts from the task (the initial messages), while the env keeps its state.

The threshold is counted in the policy's own tokens: after each call, its prompt token ids plus
its completion token ids (:mod:`boxgym.context.tokens`), never a guess from characters. A call
whose count reaches the threshold moves the cut for the calls after it: to that call's own round
(hide) or past it (discard). So the history is rewritten only when the threshold is crossed (the
engine's prefix cache holds in between), and the context may pass the threshold by at most the
one observation that came after the counted call.

:class:`ContextView` is what one call was shown, recorded with its step (``info["context"]``) so
that :func:`shown_messages` rebuilds those messages exactly from the episode's full history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal, Protocol

__all__ = [
    "ContextState",
    "ContextView",
    "DiscardAll",
    "HideToolResults",
    "Strategy",
    "rounds",
    "shown_messages",
]

PLACEHOLDER = "[tool result hidden to save context]"
StrategyName = Literal["hide_tool_results", "discard_all"]


class Strategy(Protocol):
    name: ClassVar[StrategyName]
    threshold: int

    def cut_after(self, turn: int) -> int:
        """The ``from_step`` for the calls after the call of step ``turn`` reached the threshold."""


@dataclass(frozen=True, slots=True)
class HideToolResults:
    """Past ``threshold`` tokens, hide the tool results of every round but the latest."""

    threshold: int
    placeholder: str = PLACEHOLDER
    name: ClassVar[StrategyName] = "hide_tool_results"

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("the threshold is a positive number of tokens")

    def cut_after(self, turn: int) -> int:
        return turn  # the round of the call that crossed is the latest: kept whole


@dataclass(frozen=True, slots=True)
class DiscardAll:
    """Past ``threshold`` tokens, drop the history and restart from the task."""

    threshold: int
    name: ClassVar[StrategyName] = "discard_all"

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("the threshold is a positive number of tokens")

    def cut_after(self, turn: int) -> int:
        return turn + 1  # everything up to and including the round of the call that crossed


@dataclass(frozen=True, slots=True)
class ContextView:
    """How the messages one policy call saw differ from the episode's full history.

    ``from_step``: rounds before it are hidden (``hide_tool_results``: their tool results replaced
    by ``placeholder``) or dropped (``discard_all``). ``tokens`` is the count that set this cut,
    at the call of step ``set_at``; ``new`` marks the first call under it (where the history was
    rewritten); ``edited`` how many messages it hid or dropped.
    """

    strategy: StrategyName
    from_step: int
    threshold: int
    tokens: int
    set_at: int
    new: bool
    edited: int = 0
    placeholder: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "from_step": self.from_step,
            "threshold": self.threshold,
            "tokens": self.tokens,
            "set_at": self.set_at,
            "new": self.new,
            "edited": self.edited,
        }
        if self.placeholder is not None:
            out["placeholder"] = self.placeholder
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ContextView:
        return cls(
            obj["strategy"], int(obj["from_step"]), int(obj["threshold"]), int(obj["tokens"]), int(obj["set_at"]),
            bool(obj["new"]), int(obj.get("edited", 0)), obj.get("placeholder"),
        )  # fmt: skip


def rounds(messages: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], list[list[Mapping[str, Any]]]]:
    """The initial messages, and one list per step: its assistant message, then its observation."""
    initial: list[Mapping[str, Any]] = []
    steps: list[list[Mapping[str, Any]]] = []
    for message in messages:
        if message.get("role") == "assistant":
            steps.append([message])
        elif steps:
            steps[-1].append(message)
        else:
            initial.append(message)
    return initial, steps


def _hidden(message: Mapping[str, Any], placeholder: str) -> tuple[dict[str, Any], bool]:
    role = message.get("role")
    # A tool's result, or the message of images tools returned (content parts): both are results.
    if role == "tool" or (role == "user" and isinstance(message.get("content"), list)):
        return {**message, "content": placeholder}, True
    return dict(message), False


def edit(messages: Sequence[Mapping[str, Any]], view: ContextView) -> tuple[list[dict[str, Any]], int]:
    """The messages ``view`` shows of the full history ``messages``, and how many it hid or dropped."""
    initial, steps = rounds(messages)
    shown = [dict(m) for m in initial]
    count = 0
    for index, step in enumerate(steps):
        if index >= view.from_step:
            shown += [dict(m) for m in step]
        elif view.strategy == "discard_all":
            count += len(step)
        else:
            shown.append(dict(step[0]))
            for message in step[1:]:
                hidden, changed = _hidden(message, view.placeholder or PLACEHOLDER)
                shown.append(hidden)
                count += changed
    return shown, count


def shown_messages(
    messages: Sequence[Mapping[str, Any]], view: ContextView | Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """What a policy call was shown, from the episode's full history up to that call and the
    call's recorded view (a :class:`ContextView`, its JSON from ``info["context"]``, or None:
    the whole history)."""
    if view is None:
        return [dict(m) for m in messages]
    if not isinstance(view, ContextView):
        view = ContextView.from_json(view)
    return edit(messages, view)[0]


@dataclass(slots=True)
class ContextState:
    """One episode's context: where the history is cut, and why (see the module docstring)."""

    strategy: Strategy
    from_step: int = 0
    tokens: int = 0  # the count that set the cut
    set_at: int = -1
    _shown_cut: int = 0  # the cut of the last view handed out, to mark a new one

    def observe(self, turn: int, tokens: int) -> None:
        """The call of step ``turn`` had a context of ``tokens`` (prompt + completion)."""
        if tokens >= self.strategy.threshold:
            cut = self.strategy.cut_after(turn)
            if cut > self.from_step:
                self.from_step, self.tokens, self.set_at = cut, tokens, turn

    def view(self, messages: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], ContextView | None]:
        """What the next call is shown of ``messages`` (the full history), and its view (None: all)."""
        if self.from_step == 0:
            return [dict(m) for m in messages], None
        strategy = self.strategy
        placeholder = strategy.placeholder if isinstance(strategy, HideToolResults) else None
        view = ContextView(strategy.name, self.from_step, strategy.threshold, self.tokens, self.set_at,
                           self.from_step != self._shown_cut, 0, placeholder)  # fmt: skip
        shown, count = edit(messages, view)
        self._shown_cut = self.from_step
        return shown, replace(view, edited=count)
