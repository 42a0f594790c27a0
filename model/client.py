"""Airflow's Execution API client between the supervisor and the server: each request tried again.

Specifies ``airflow.sdk.api.client.Client.request`` of apache-airflow-task-sdk 1.3.2: a request
is tried up to ``execution_api_retries`` times (``[workers] execution_api_retries``, counted by
``stop_after_attempt``, so the first try is one of them). A try is tried again when it got a 5xx
or no answer at all (``_should_retry_api_request``: an ``HTTPStatusError`` of 500 or more, any
``httpx.RequestError`` such as the read timeout of a lost answer); any other answer ends the
request, and the last try's answer is the request's. The waits between tries change when the
tries happen, not what the server does with them: the model has none.

Every try reaches ``model.server`` (or the fault in front of it) and is recorded as one
``ApiCall``, as the server sees requests.
"""

from __future__ import annotations

from typing import Callable

from model.scenario import TIMEOUT, ApiCall
from model.server import Server, client_status

#: One try of a request on the server: the server after it, and what it answered.
OneTry = Callable[[Server], "tuple[Server, int | str]"]


def tried_again(status: int | str) -> bool:
    """Does the client try a request again after this answer? A 5xx, or none at all (``TIMEOUT``)."""
    return status == TIMEOUT or (isinstance(status, int) and status >= 500)


def request(server: Server, one_try: OneTry, tries: int, name: str,
            state: str | None = None) -> tuple[Server, tuple[ApiCall, ...], int | str]:
    """Up to ``tries`` tries of ``one_try``: the server after them, one ``ApiCall`` per try, and the last answer.

    ``name`` and ``state`` are what the calls are recorded as (``state`` only for ``finish``).
    """
    calls: list[ApiCall] = []
    status: int | str = TIMEOUT
    for _ in range(tries):
        server, status = one_try(server)
        status = client_status(status)
        calls.append(ApiCall(name, status, state))
        if not tried_again(status):
            break
    return server, tuple(calls), status


def call(server: Server, name: str, state: str | None, tries: int) -> tuple[Server, tuple[ApiCall, ...], int | str]:
    """A state-changing or side call (``Server.call``), tried as the client tries it."""
    return request(server, lambda s: s.call(name, state), tries, name, state)


def heartbeat(server: Server, answer: int, tries: int) -> tuple[Server, tuple[ApiCall, ...], int | str]:
    """The supervisor's heartbeat (``Server.heartbeat``: the world arranged so the server answers ``answer``),
    tried as the client tries it."""
    return request(server, lambda s: s.heartbeat(answer), tries, "heartbeat")


def _next_try(tried: int, previous: ApiCall, call: ApiCall, tries: int) -> bool:
    """Whether ``call`` is the next try of the request whose ``tried``-th try was ``previous``: that one was tried again
    (``tried_again``), fewer than ``tries`` tries were made, and ``call`` is of the same name."""
    return tried < tries and previous.name == call.name and tried_again(previous.status)


def requests(calls: tuple[ApiCall, ...], tries: int) -> tuple[tuple[ApiCall, ...], ...]:
    """The tries of ``calls`` grouped by request, in order (``_next_try``). ``calls`` is a record of tries
    (``request``'s, an observation's)."""
    grouped: list[list[ApiCall]] = []
    for c in calls:
        if grouped and _next_try(len(grouped[-1]), grouped[-1][-1], c, tries):
            grouped[-1].append(c)
        else:
            grouped.append([c])
    return tuple(map(tuple, grouped))


def as_seen(calls: tuple[ApiCall, ...], tries: int) -> tuple[ApiCall, ...]:
    """The calls as the supervisor saw them: of each request's tries (``requests``), the last (its answer is the
    request's)."""
    seen: list[ApiCall] = []
    tried = 0
    for c in calls:
        if seen and _next_try(tried, seen[-1], c, tries):
            seen[-1] = c
            tried += 1
        else:
            seen.append(c)
            tried = 1
    return tuple(seen)
