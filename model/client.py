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


def requests(calls: tuple[ApiCall, ...], tries: int) -> tuple[tuple[ApiCall, ...], ...]:
    """The tries of ``calls`` grouped by request, in order: a try is the next one of the same request when the one
    before it was tried again and fewer than ``tries`` tries were made.

    ``calls`` is a record of tries (``request``'s, an observation's).
    """
    grouped: list[list[ApiCall]] = []
    for c in calls:
        last = grouped[-1] if grouped else None
        if last and len(last) < tries and last[-1].name == c.name and tried_again(last[-1].status):
            last.append(c)
        else:
            grouped.append([c])
    return tuple(map(tuple, grouped))


def as_seen(calls: tuple[ApiCall, ...], tries: int) -> tuple[ApiCall, ...]:
    """The calls as the supervisor saw them: of each request's tries (``requests``), the last (its answer is the
    request's)."""
    return tuple(tried[-1] for tried in requests(calls, tries))
