"""The terminal bodies our scripted runtimes send are bodies the real task runner would send.

Each body of ``impl.wire.codec.terminal_body`` must pass, in turn, every gate a real one
passes: Airflow's published ``schema.json``, the supervisor's own decoder (the task runner's
``comms`` models), and, once the real supervisor has turned it into an Execution API request
with Airflow's real client, the server's own request model (``TIStateUpdate``, or the
skip-downstream payload). A body the server would refuse with 422 fails here.
"""

from __future__ import annotations

import json
import types
import uuid

import pytest

from impl.wire import codec
from model.scenario import FRAME_TYPES, TASK_STATE_STATES

pytest.importorskip("airflow.api_fastapi.execution_api.datamodels.taskinstance",
                    reason="the server's request models come with apache-airflow-core (the airflow extra)")

TI_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")


def _bodies():
    for frame in FRAME_TYPES:
        for state in (TASK_STATE_STATES if frame == "TaskState" else (None,)):
            yield pytest.param(frame, state, id=f"{frame}-{state}" if state else frame)


def _requests_the_supervisor_makes(msg) -> list:
    """The HTTP requests Airflow's supervisor makes for ``msg``, through Airflow's client, captured."""
    import httpx
    from airflow.sdk.api.client import Client
    from airflow.sdk.execution_time.comms import SkipDownstreamTasks, TaskState
    from airflow.sdk.execution_time.supervisor import ActivitySubprocess

    sent = []

    def answer(request):
        sent.append(request)
        return httpx.Response(204, request=request)

    client = Client(base_url="http://execution-api.invalid/", token="", transport=httpx.MockTransport(answer))
    if isinstance(msg, TaskState):  # no call of its own: the closing finish() reports it
        client.task_instances.finish(id=TI_ID, state=msg.state, when=msg.end_date,
                                     rendered_map_index=msg.rendered_map_index)
    elif isinstance(msg, SkipDownstreamTasks):
        client.task_instances.skip_downstream_tasks(TI_ID, msg)
    else:  # the supervisor's own method, on the few fields it reads of itself
        holder = types.SimpleNamespace(client=client, id=TI_ID,
                                       _rendered_map_index=getattr(msg, "rendered_map_index", None),
                                       _pending_terminal_state_msg=None, _terminal_state=None)
        ActivitySubprocess._send_terminal_state_msg(holder, msg)
    client.close()
    return sent


def _server_model(path: str, content: bytes):
    """The server's request model for a request: the skip-downstream payload, or the member of ``TIStateUpdate``
    its own discriminator (``ti_state_discriminator``) picks for the body."""
    from typing import get_args

    from airflow.api_fastapi.execution_api.datamodels.taskinstance import (
        TISkippedDownstreamTasksStatePayload,
        TIStateUpdate,
        ti_state_discriminator,
    )

    if path.endswith("/skip-downstream"):
        return TISkippedDownstreamTasksStatePayload
    union = get_args(TIStateUpdate)[0]
    by_tag = {tag.tag: model for model, tag in (get_args(member) for member in get_args(union))}
    return by_tag[ti_state_discriminator(json.loads(content))]


@pytest.mark.parametrize("frame, state", list(_bodies()))
def test_our_terminal_body_passes_the_schema_the_supervisor_and_the_server(frame, state):
    from airflow.sdk.execution_time.supervisor import ActivitySubprocess

    body = codec.terminal_body(frame, state)
    codec.validate_body(body)
    msg = ActivitySubprocess.decoder.validate_python(body)
    assert type(msg).__name__ == frame

    (request,) = _requests_the_supervisor_makes(msg)
    payload = _server_model(request.url.path, request.content).model_validate_json(request.content)
    if frame != "SkipDownstreamTasks":
        assert payload.state == (state or body["state"])


@pytest.mark.parametrize("frame", ["DeferTask", "AwaitInputTask"])
def test_a_parked_task_carries_next_kwargs_as_the_task_runner_sends_them(frame):
    """The task runner always sends ``next_kwargs`` (``serialize(kwargs or {})``); without it the client sends
    null, which the server refuses (422): our bodies carry it."""
    from airflow.sdk.execution_time.supervisor import ActivitySubprocess

    body = codec.terminal_body(frame)
    assert body["next_kwargs"] == {}
    (request,) = _requests_the_supervisor_makes(ActivitySubprocess.decoder.validate_python(body))
    assert json.loads(request.content)["next_kwargs"] == {}
