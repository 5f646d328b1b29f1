"""Black-box agents as policies: your own agent loop, the manager's deadlines, budgets and records.

An agent is ``async def agent(session) -> str | None`` (or an object with such a ``__call__``).
It calls an OpenAI-compatible API itself, at ``session.base_url`` (the embedded gateway's
per-episode URL, so every call is attributed to the episode), and acts through
``await session.step(action)``, which returns the env's observation::

    async def agent(session: AgentSession) -> str | None:
        async with openai.AsyncOpenAI(base_url=session.base_url, api_key="-") as client:
            messages = list(session.messages)
            while True:
                response = await client.chat.completions.create(model="m", messages=messages, tools=session.tools)
                reply = response.choices[0].message
                if not reply.tool_calls:
                    return reply.content                   # ends the episode: reason "agent_done"
                messages += [reply.model_dump(exclude_none=True), *await session.step(reply)]

The inversion of control uses two futures and no threads. The driver calls the
:class:`AgentPolicy` once per step. The first call starts the agent as a task; every call waits
until the agent calls ``step(action)`` (the call returns ``action`` as its completion, and the
driver steps the env with it), returns (a final completion: the episode ends, the judge scores
it) or raises (that episode's error). The next call hands the observation the driver appended
to the episode back to the agent as the result of its ``step``.

Lifetimes. The policy owns every agent task and ends each with its episode:

* the agent returned or raised: at that policy call;
* the policy call was cancelled (a deadline, ``manager.cancel``, the run torn down): there;
* the episode ended without asking the policy again (the env terminated or truncated it,
  ``max_turns``, an infrastructure failure, before a retry under a new id, a paused episode
  discarded by ``manager.aclose``): when the driver calls :meth:`AgentPolicy.episode_ended`;
* :meth:`AgentPolicy.aclose` cancels and awaits every agent still running (paused episodes
  keep theirs until they resume or the policy is closed).

An ended agent is cancelled: its pending ``step`` raises ``CancelledError``, ``session.done``
is true and ``session.reason`` says why; a later ``step`` raises
:class:`~boxgym.errors.AgentSessionClosed`. Nothing stays behind per finished episode.

Tokens. The agent talks to the gateway directly, so the completions the policy returns carry
no token ids unless the policy is given the ``gateway``: then each completion carries the token
record (prompt and completion ids, logprobs, weight version, call id) of the episode's latest
gateway call, if the agent made one since its previous action. An agent that makes several
calls per action (a planner, a retry, a summary) has only the last one's tokens on the
completion, so ``to_training(result)`` sees only those; every call is in the gateway's records,
and ``gateway.training_view(episode_id)`` (``boxgym gateway export`` offline) builds the
training sequences from all of them.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import AgentSessionClosed, AgentSessionError, GatewayError, UpstreamError
from .policy import EpisodeView, as_completion
from ..trajectories import EndReason, Outcome
from .types import Completion, TaskRef

if TYPE_CHECKING:
    from ..gateway import CallRecord, Gateway

__all__ = ["AgentFn", "AgentPolicy", "AgentSession"]

log = logging.getLogger(__name__)

#: The user's agent loop: returns the final answer (or None) when it is done.
AgentFn = Callable[["AgentSession"], Awaitable[str | None]]


class _Final:
    """What the agent returned: the episode's final answer."""

    __slots__ = ("text",)

    def __init__(self, text: str | None) -> None:
        self.text = text


class AgentSession:
    """One episode as a black-box agent sees it: its start, its tools and a ``step``.

    ``messages`` is the initial observation (the env's system and user messages, a copy the
    agent may keep and extend), ``tools`` the OpenAI function schemas, ``base_url`` the
    episode's OpenAI base URL (the policy's configured one if the episode has none).
    """

    __slots__ = (
        "episode_id",
        "task",
        "base_url",
        "messages",
        "tools",
        "_reason",
        "_task",
        "_action",
        "_reply",
        "_mark",
        "_calls_seen",
        "_episode",
    )

    def __init__(self, episode: EpisodeView, base_url: str | None) -> None:
        self.episode_id = episode.episode_id
        self.task: TaskRef = episode.task
        self.base_url = episode.base_url or base_url
        self.messages: list[dict[str, Any]] = list(episode.messages)
        self.tools: list[dict[str, Any]] = list(episode.tools)
        self._reason: EndReason | None = None  # set when the session ends
        self._task: asyncio.Task[Any] | None = None  # the agent
        self._action: asyncio.Future[Any] | None = None  # the waiting policy call's: an action or a _Final
        self._reply: asyncio.Future[list[dict[str, Any]]] | None = None  # the agent's pending step's
        self._mark = 0  # len(episode.messages) when the last action was returned; the driver appends it there
        self._calls_seen = 0  # the episode's gateway records already accounted for
        self._episode: EpisodeView | None = episode

    @property
    def done(self) -> bool:
        """The episode is over for the agent: ``step`` raises from now on."""
        return self._reason is not None

    @property
    def reason(self) -> EndReason | None:
        """Why the session ended (the episode's reason, e.g. ``"submitted"``), None while it runs."""
        return self._reason

    @property
    def terminated(self) -> bool:
        """The env ended the episode (a submit, a solved or failed task)."""
        reason = self._reason
        return (
            reason is not None
            and reason.outcome is Outcome.TERMINATED
            and reason not in (EndReason.AGENT_DONE, EndReason.NO_ACTION)
        )

    async def step(self, action: str | Mapping[str, Any] | Any) -> list[dict[str, Any]]:
        """Act: ``action`` is an assistant message (a dict, or the openai SDK's message object)
        or its text. Returns the env's observation (tool messages). Raises
        :class:`~boxgym.errors.AgentSessionClosed` once the session is over; when the episode
        ends while this call waits, the agent is cancelled here."""
        if self._reason is not None:
            raise AgentSessionClosed(f"episode {self.episode_id} is over ({self._reason}); the agent cannot step")
        if self._reply is not None:
            raise AgentSessionError(f"episode {self.episode_id}: step() called while another step is pending")
        action_future = self._action
        if action_future is None or action_future.done():
            raise AgentSessionError(f"episode {self.episode_id}: step() called while no policy call waits")
        message = _assistant_message(action)
        reply = self._reply = asyncio.get_running_loop().create_future()
        action_future.set_result(message)
        try:
            return await reply
        finally:
            self._reply = None


def _assistant_message(action: Any) -> dict[str, Any]:
    dump = getattr(action, "model_dump", None)  # the openai SDK's ChatCompletionMessage (pydantic)
    if callable(dump):
        action = dump(exclude_none=True)
    if not isinstance(action, str | Mapping):
        raise TypeError(f"an action is a str or an assistant message, not {type(action).__name__}")
    return as_completion(action).message


class AgentPolicy:
    """A black-box agent loop as a :class:`~boxgym.rollout.Policy`; see the module docstring.

    ``agent(session)`` is started once per episode. ``base_url`` is the fallback when the
    manager gives the episode none; ``gateway`` (an embedded, started
    :class:`boxgym.gateway.Gateway`) lets completions carry the engine's tokens.
    ``close_timeout`` bounds how long :meth:`aclose` waits for cancelled agents to finish.
    """

    def __init__(
        self,
        agent: AgentFn,
        *,
        base_url: str | None = None,
        gateway: Gateway | None = None,
        close_timeout: float = 5.0,
    ) -> None:
        self.agent = agent
        self.base_url = base_url
        self.gateway = gateway
        self.close_timeout = close_timeout
        self._sessions: dict[str, AgentSession] = {}  # episode id -> its live session
        self._tasks: set[asyncio.Task[Any]] = set()  # every agent task not finished yet, ended ones included
        self._closed = False

    @property
    def live_sessions(self) -> int:
        """Episodes with a live agent session."""
        return len(self._sessions)

    @property
    def agent_tasks(self) -> int:
        """Agent tasks not finished yet (a cancelled agent counts until it has unwound)."""
        return len(self._tasks)

    async def __call__(self, episode: EpisodeView) -> Completion:
        if self._closed:
            raise AgentSessionClosed("the AgentPolicy is closed")
        session = self._sessions.get(episode.episode_id)
        if session is None:
            session = self._start(episode)
            action = session._action
        else:
            # A fresh future for the agent's next action before its step returns.
            action = session._action = asyncio.get_running_loop().create_future()
            reply = session._reply
            if reply is not None and not reply.done():
                # What the driver appended after our action (at _mark): the env's observation.
                reply.set_result(episode.messages[session._mark + 1 :])
            self._settle(session)  # the agent may have finished while the env stepped
        assert action is not None
        try:
            answer = await action
        except asyncio.CancelledError:
            self._end(session, EndReason.CANCELLED)  # a deadline or a cancel stopped the episode here
            raise
        except UpstreamError as exc:
            self._end(session, "infra")
            # Not the driver's retry of one policy call: a black-box agent cannot be resumed
            # mid-episode. As a gateway failure it is retried as a whole episode.
            raise GatewayError(f"the agent's engine failed: {exc}") from exc
        except BaseException:
            self._end(session, "error")
            raise
        tokens = self._tokens(session)
        if isinstance(answer, _Final):
            self._end(session, "agent_done")
            return Completion({"role": "assistant", "content": answer.text}, final=True, **tokens)
        session._mark = len(episode.messages)
        return Completion(answer, **tokens)

    def _start(self, episode: EpisodeView) -> AgentSession:
        if episode.turn > 0:
            raise AgentSessionClosed(
                f"episode {episode.episode_id} is at turn {episode.turn} and has no agent (it ended"
                " earlier, or the episode was paused under another policy): a black-box agent cannot"
                " join an episode midway"
            )
        session = AgentSession(episode, self.base_url)
        session._action = asyncio.get_running_loop().create_future()
        coro = self.agent(session)
        if not inspect.iscoroutine(coro):
            raise TypeError(f"an agent must be an async function of the session, not {type(self.agent).__name__}")
        task = asyncio.get_running_loop().create_task(coro, name=f"agent {episode.episode_id}")
        session._task = task
        self._sessions[episode.episode_id] = session
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._agent_done, session))
        return session

    def _agent_done(self, session: AgentSession, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._settle(session)

    def _settle(self, session: AgentSession) -> None:
        """Hand a finished agent's return value or exception to the waiting policy call, if any."""
        task = session._task
        if task is None or not task.done():
            return
        action = session._action
        if task.cancelled():
            if action is not None and not action.done():
                why = "its session ended" if session._reason is None else f"its session ended ({session._reason})"
                action.set_exception(AgentSessionClosed(f"the agent of episode {session.episode_id} was cancelled: {why}"))
            return
        exc = task.exception()  # retrieved even when no call waits: no "never retrieved" noise
        if action is None or action.done():
            return
        if exc is not None:
            action.set_exception(exc)
            return
        answer = task.result()
        if answer is not None and not isinstance(answer, str):
            action.set_exception(TypeError(f"an agent returns str or None, not {type(answer).__name__}"))
        else:
            action.set_result(_Final(answer))

    def episode_ended(self, episode: EpisodeView) -> None:
        """Called by the driver when an episode is over (not when it pauses): end its agent."""
        session = self._sessions.get(episode.episode_id)
        if session is not None:
            self._end(session, episode.reason or EndReason.CANCELLED)

    def _end(self, session: AgentSession, reason: EndReason) -> None:
        """End one session: forget it, cancel its agent. Idempotent; never waits (aclose does)."""
        if session._reason is None:
            session._reason = reason
        if self._sessions.get(session.episode_id) is session:
            del self._sessions[session.episode_id]
        session._episode = None
        task = session._task
        if task is not None and not task.done():
            task.cancel()
        reply = session._reply
        if reply is not None and not reply.done():
            reply.cancel()  # a step pending in another task of the agent's

    def _tokens(self, session: AgentSession) -> dict[str, Any]:
        """The token fields of the episode's latest gateway call, if one was made since the last action."""
        if self.gateway is None:
            return {}
        records = self.gateway.records(session.episode_id)
        if len(records) <= session._calls_seen:
            return {}
        session._calls_seen = len(records)
        record: CallRecord = records[-1]
        if not record.ok:
            return {}
        return {
            "prompt_token_ids": record.prompt_token_ids,
            "completion_token_ids": record.completion_token_ids,
            "logprobs": record.logprobs,
            "weight_version": record.weight_version,
            "call_id": record.call_id,
            "finish_reason": record.finish_reason,
        }

    async def aclose(self) -> None:
        """Cancel every agent and wait (up to ``close_timeout``) for them to finish. Idempotent."""
        self._closed = True
        for session in list(self._sessions.values()):
            self._end(session, EndReason.CANCELLED)
        tasks = list(self._tasks)
        if not tasks:
            return
        for task in tasks:
            task.cancel()
        _, pending = await asyncio.wait(tasks, timeout=self.close_timeout)
        if pending:
            log.warning("%d agent task(s) ignored cancellation for %ss; left running", len(pending), self.close_timeout)

    async def __aenter__(self) -> AgentPolicy:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
