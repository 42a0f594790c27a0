"""Airflow's ``Client`` as the supervisor sees it, answering in process from ``model.server``.

``RecordingClient(scenario).task_instances`` has the methods of the real client's
``task_instances`` that the supervisor calls; each answers from ``model.server.Server`` (the
server's rules and the scenario's faults), tried as Airflow's client tries a request
(``model.client``: ``execution_api_retries`` tries, again after a 5xx or no answer), raises what
Airflow's client raises when the last try failed, and records every try.
"""

from __future__ import annotations

import functools

import httpx
from airflow.sdk.api.client import ServerResponseError
from airflow.sdk.api.datamodels._generated import DagRun, TIRunContext

from model import client
from model.scenario import TIMEOUT, ApiCall, Fault, RunContext, Scenario, UserAction
from impl.releases.adapters import model_release, model_state
from model.server import OK, Server

_REQUEST = httpx.Request("PATCH", "http://execution-api.invalid/")


@functools.lru_cache(maxsize=None)
def _error_prototype(status: int | str) -> Exception:
    if status == TIMEOUT:
        return httpx.ReadTimeout("the answer never arrived", request=_REQUEST)
    response = httpx.Response(status, json={"detail": {"reason": "finalstate"}}, request=_REQUEST)
    return ServerResponseError.from_response(response)


def api_error(status: int | str) -> Exception:
    """What Airflow's client raises for a failed call: ``ServerResponseError``, or a timeout.

    A fresh copy each time (a raised exception keeps its traceback); building the httpx
    response anew per call was most of this binding's cost. The copy is the prototype's arguments and attributes in
    a new instance of its class, as ``copy.copy`` makes it, without ``copy``'s round trip through ``__reduce__``.
    """
    prototype = _error_prototype(status)
    fresh = BaseException.__new__(type(prototype), *prototype.args)
    fresh.__dict__.update(prototype.__dict__)
    return fresh


@functools.lru_cache(maxsize=None)
def _run_context(context: RunContext) -> TIRunContext:
    """The ``TIRunContext`` the server hands out; the supervisor only reads it."""
    return TIRunContext.model_construct(
        dag_run=DagRun.model_construct(), max_tries=context.max_tries,
        should_retry=context.should_retry, start_date=None,
    )


@functools.lru_cache(maxsize=None)
def _queued(context: RunContext) -> Server:
    """The row the server holds for a run context before the attempt starts (the installed release's server)."""
    return Server.queued(context, release=model_release())


@functools.lru_cache(maxsize=None)
def _started(server: Server, tries: int) -> tuple[Server, tuple[ApiCall, ...], int | str]:
    """``task_instances.start`` on ``server``, tried ``tries`` times: a pure function of the two, asked for by every
    attempt in process with one of a few servers (``_queued``), so answered once for each."""
    return client.request(server, Server.start, tries, "start")


#: How many of the server model's answers are kept (``_called``, ``_armed``, ``_heartbeat``): far more than the
#: distinct servers an exhaustive scope meets, a bound all the same.
_ANSWERS_KEPT = 1 << 16


@functools.lru_cache(maxsize=_ANSWERS_KEPT)
def _called(server: Server, name: str, state: str | None, tries: int) -> tuple[Server, tuple[ApiCall, ...], int | str]:
    """``model.client.call``: a pure function of frozen values, which attempts in process ask again and again."""
    return client.call(server, name, state, tries)


@functools.lru_cache(maxsize=_ANSWERS_KEPT)
def _heartbeat(server: Server, answer: int, tries: int) -> tuple[Server, tuple[ApiCall, ...], int | str]:
    """``model.client.heartbeat``, kept as ``_called``."""
    return client.heartbeat(server, answer, tries)


@functools.lru_cache(maxsize=_ANSWERS_KEPT)
def _armed(server: Server, fault: Fault) -> Server:
    """``model.server.Server.arm``, kept as ``_called``."""
    return server.arm(fault)


class RecordingTaskInstances:
    """``client.task_instances``, answering from the server model and recording each call.

    Keyword arguments a newer release adds to a call (``**_newer``) are accepted and not recorded, and
    those an older release does not pass have defaults: an observation is the call, its state and its answer.
    """

    def __init__(self, scenario: Scenario):
        self.context = scenario.context
        self.tries = scenario.execution_api_retries
        self.server = _queued(scenario.context)
        self.calls: list[ApiCall] = []
        #: What the last succeed, retry or finish call carried as ``rendered_map_index``.
        self.map_index_sent: str | None = None
        self.heartbeat_answer = 200

    def copy(self) -> RecordingTaskInstances:
        """An independent client in the same place: the same server, the calls so far, each recorded apart from now on."""
        twin = object.__new__(RecordingTaskInstances)
        twin.__dict__.update(self.__dict__)
        twin.calls = list(self.calls)
        return twin

    def arm(self, fault: Fault) -> None:
        """From now on ``fault`` applies to its call (``model.server.Server.arm``)."""
        self.server = _armed(self.server, fault)

    def heartbeat_due(self, answer: int) -> None:
        """The next heartbeat is answered ``answer`` (as ``model.server`` answers for a RUNNING TI)."""
        self.heartbeat_answer = answer

    def act(self, action: UserAction) -> None:
        """A user acts on the task instance (``model.server.Server.act``)."""
        self.server = self.server.act(action)

    def _answer(self, server: Server, calls: tuple[ApiCall, ...], status: int | str) -> None:
        self.server = server
        self.calls += calls
        if status != OK:  # 200 or 204 (``client_status``): the client raises for neither
            raise api_error(status)

    def _call(self, name: str, state: str | None = None) -> None:
        self._answer(*_called(self.server, name, state, self.tries))

    def start(self, id, pid, when, **_newer) -> TIRunContext:
        self._answer(*_started(self.server, self.tries))
        return _run_context(self.context)

    def heartbeat(self, id, pid, **_newer) -> None:
        tries = self.tries if model_release().retries_heartbeats else 1  # the release's Client, as the model has it
        self._answer(*_heartbeat(self.server, self.heartbeat_answer, tries))

    def finish(self, id, state, when=None, rendered_map_index=None, **_newer) -> None:
        self.map_index_sent = rendered_map_index
        self._call("finish", model_state(state))

    def succeed(self, id, when=None, task_outlets=None, outlet_events=None, rendered_map_index=None, **_newer) -> None:
        self.map_index_sent = rendered_map_index
        self._call("succeed")

    def retry(self, id, end_date=None, rendered_map_index=None, retry_delay_seconds=None, retry_reason=None,
              **_newer) -> None:
        self.map_index_sent = rendered_map_index
        self._call("retry")

    def defer(self, id, msg, **_newer) -> None:
        self._call("defer")

    def reschedule(self, id, msg, **_newer) -> None:
        self._call("reschedule")

    def await_input(self, id, msg, **_newer) -> None:
        self._call("await_input")

    def skip_downstream_tasks(self, id, msg, **_newer) -> None:
        self._call("skip_downstream_tasks")


class NoVariables:
    """``client.variables`` of a server that has none: ``get`` answers as Airflow's client does for a 404, with the
    ``VARIABLE_NOT_FOUND`` error it hands back to the runtime (``GetVariable`` is the no-op request of the releases
    before ``MaskSecret``: ``impl.releases.adapters.since_1_0_6_mask_secret_no_op``). Not recorded: an observation
    holds the task-instance calls."""

    def get(self, key: str):
        from airflow.sdk.exceptions import ErrorType
        from airflow.sdk.execution_time.comms import ErrorResponse

        return ErrorResponse(error=ErrorType.VARIABLE_NOT_FOUND, detail={"key": key})


class RecordingClient:
    def __init__(self, scenario: Scenario):
        self.task_instances = RecordingTaskInstances(scenario)
        self.variables = NoVariables()

    def copy(self) -> RecordingClient:
        """An independent client in the same place (``RecordingTaskInstances.copy``)."""
        twin = object.__new__(RecordingClient)
        twin.__dict__.update(self.__dict__)
        twin.task_instances = self.task_instances.copy()
        return twin


def error_name(e: Exception) -> str:
    """What the supervisor raised, as an observation names it: ``ServerResponseError(409)``, or the type's name."""
    if isinstance(e, ServerResponseError):
        return f"ServerResponseError({e.response.status_code})"
    return type(e).__name__
