"""The supervisor ↔ runtime wire: length-prefixed msgpack frames with ``type``-tagged bodies.

A frame is a 4-byte big-endian payload length, then a msgpack array:
``[id, body, context_carrier]`` for a request, ``[id, body, error]`` for a response.
Airflow's encoder always writes all three fields (nil where unset); its decoder, and
ours, also take a two-field array from runtimes that leave the last one out. Bodies are maps
with a ``type`` discriminator and are checked against the ``schema.json`` Airflow
publishes (``airflow/sdk/execution_time/schema``).

Before task-sdk 1.0.3 the wire was JSON lines (apache/airflow#51699 replaced it): a request is its
body as one line of JSON, and the supervisor writes a line back only when handling the request gave
it something to send, with no id to pair it (``encode_request_line``, ``decode_reply_line``). What
the runtime was told for each request is recorded by ``FrameReplies`` or ``LineReplies``.

Only msgpack is needed to encode and decode; schema validation loads the installed
task-sdk's ``schema.json`` (and ``jsonschema``) the first time it is asked for.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from importlib import resources
from typing import Any

import attrs
import msgpack

from model.scenario import FRAMES_WITH_MAP_INDEX, UNANSWERED

HEADER_SIZE = 4
#: Frames longer than this are refused before their payload is read.
DEFAULT_MAX_FRAME = 16 * 1024 * 1024


class FrameError(ValueError):
    """A frame that is not what the wire allows; the message says what was wrong."""


@attrs.frozen
class RequestFrame:
    id: int
    body: dict[str, Any] | None
    context_carrier: dict[str, str] | None = None


@attrs.frozen
class ResponseFrame:
    #: None for a JSON line (before task-sdk 1.0.3), which carries no id.
    id: int | None
    body: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def _pack(fields: list) -> bytes:
    payload = msgpack.packb(fields, use_bin_type=True, datetime=True)
    return len(payload).to_bytes(HEADER_SIZE, "big") + payload


def encode_request(frame: RequestFrame) -> bytes:
    return _pack([frame.id, frame.body, frame.context_carrier])


def encode_response(frame: ResponseFrame) -> bytes:
    return _pack([frame.id, frame.body, frame.error])


def read_length(header: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> int:
    """The payload length a 4-byte header announces; refuses short headers and oversized frames."""
    if len(header) != HEADER_SIZE:
        raise FrameError(f"truncated frame: {len(header)} of {HEADER_SIZE} length-prefix bytes")
    length = int.from_bytes(header, "big")
    if length > max_frame:
        raise FrameError(f"oversized frame: length prefix says {length} bytes, limit is {max_frame}")
    return length


def _unpack(data: bytes, max_frame: int, kind: str) -> list:
    length = read_length(data[:HEADER_SIZE], max_frame)
    payload = data[HEADER_SIZE:]
    if len(payload) < length:
        raise FrameError(f"truncated frame: length prefix says {length} bytes, {len(payload)} arrived")
    if len(payload) > length:
        raise FrameError(f"{len(payload) - length} stray bytes after a {length}-byte frame")
    try:
        fields = msgpack.unpackb(payload, raw=False, timestamp=3, strict_map_key=False)
    except Exception as e:
        raise FrameError(f"frame payload is not msgpack: {type(e).__name__}: {e}") from None
    if not isinstance(fields, list) or not 2 <= len(fields) <= 3:
        raise FrameError(f"a {kind} frame is a msgpack array of 2 or 3 fields, got {_describe(fields)}")
    if not isinstance(fields[0], int) or isinstance(fields[0], bool):
        raise FrameError(f"frame id must be an integer, got {_describe(fields[0])}")
    for name, value in zip(("body", "context_carrier" if kind == "request" else "error"), fields[1:]):
        if value is not None and not isinstance(value, dict):
            raise FrameError(f"frame {name} must be a map or nil, got {_describe(value)}")
    if isinstance(fields[1], dict) and not isinstance(fields[1].get("type"), str):
        raise FrameError("frame body has no string 'type' discriminator")
    return fields + [None] * (3 - len(fields))


def decode_request(data: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> RequestFrame:
    """Decode one whole request frame (header included); ``FrameError`` says what was wrong."""
    return RequestFrame(*_unpack(data, max_frame, "request"))


def decode_response(data: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> ResponseFrame:
    return ResponseFrame(*_unpack(data, max_frame, "response"))


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


# -- JSON lines: the wire before task-sdk 1.0.3 ------------------------------------------------

#: The error a supervisor before 1.0.3 answers a request whose handling failed with (``ErrorType.API_SERVER_ERROR``:
#: its runtime's ``get_message`` raises it). Any other line answers a request (``VARIABLE_NOT_FOUND`` included).
FAILED_REQUEST = "API_SERVER_ERROR"


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {_describe(value)}")


def encode_request_line(body: dict[str, Any]) -> bytes:
    """One request as a runtime before task-sdk 1.0.3 writes it (``send_request``: ``model_dump_json`` and a
    newline): its body as one line of JSON, datetimes in ISO 8601."""
    return json.dumps(body, default=_json_default, separators=(",", ":")).encode() + b"\n"


def decode_line(data: bytes) -> dict[str, Any]:
    """One line of JSON holding an object; ``FrameError`` says what else it was."""
    try:
        value = json.loads(bytes(data))
    except ValueError as e:
        raise FrameError(f"a line that is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise FrameError(f"a line is a JSON object, got {_describe(value)}")
    return value


def decode_reply_line(data: bytes) -> ResponseFrame:
    """One line a supervisor before task-sdk 1.0.3 wrote to its runtime, as a response frame with no id: an
    ``ErrorResponse`` whose error is ``FAILED_REQUEST`` is the error; any other line the body."""
    body = decode_line(data)
    if body.get("type") == "ErrorResponse" and body.get("error") == FAILED_REQUEST:
        return ResponseFrame(None, error=body)
    return ResponseFrame(None, body=body)


# -- what the runtime was told, request by request ---------------------------------------------


class _Replies:
    """A recorder of what the runtime was told, request by request (``replies``)."""

    replies: list[str]

    def copy(self):
        """An independent recorder that has recorded what this one has, and goes on from where it is."""
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin.replies = list(self.replies)
        return twin


class FrameReplies(_Replies):
    """What the runtime was told for each of its own requests, read from the response frames the supervisor wrote
    (since task-sdk 1.0.3): ``ok`` or ``error`` for the answer to each request handed to ``_handle_request``, by the
    id the runtime gave it, whatever that id is (a runtime may reuse StartupDetails' 0). A scripted runtime's lockstep
    requests are not its own (``handling`` is told). A write while an answer is awaited that is no response frame is
    recorded as ``undecodable: why``."""

    def __init__(self):
        self.replies: list[str] = []
        self._awaited: int | None = None

    def handling(self, own: bool, request_id: int | None = None) -> None:
        """The supervisor decoded a request and hands it to ``_handle_request`` (``own``: one of the runtime's own,
        not a scripted runtime's lockstep); its answer is the next response frame with ``request_id``."""
        self._awaited = request_id if own else None

    def handled(self) -> None:
        """``_handle_request`` returned (it did not raise) for the request last handed to it."""

    def sent(self, data: bytes) -> None:
        """The supervisor wrote ``data`` to its runtime."""
        if self._awaited is None:
            return
        told = _told(bytes(data))
        if isinstance(told, str):
            self.replies.append(told)
            self._awaited = None
            return
        answered, said = told
        if answered == self._awaited:
            self.replies.append(said)
            self._awaited = None


@functools.lru_cache(maxsize=4096)
def _told(data: bytes):
    """What a response frame tells the runtime, ``(its id, "ok" or "error")``, or ``undecodable: why``: the supervisor
    writes the same few frames over and over."""
    try:
        frame = decode_response(data)
    except FrameError as e:
        return f"undecodable: {e}"
    return frame.id, "error" if frame.error else "ok"


class LineReplies(_Replies):
    """What the runtime was told for each of the scenario's requests, read from the JSON lines the supervisor wrote
    (before task-sdk 1.0.3). No id pairs a line with its request, and a request handled with nothing to send gets no
    line, so the requests are followed as the supervisor handles them: the line written while one is handled, or once
    its handling raised (``handle_requests``' error reply), is its answer, ``ok`` or ``error`` (``decode_reply_line``;
    ``undecodable: why`` for a line that is not JSON); one whose handling returned with no line written is
    ``unanswered``; one whose handling raised and got no line, its error leaving ``handle_requests``, has no entry
    (``wait()`` raises it: the one frame more that ``model.invariants.frames_received`` counts). A line written before
    any request (StartupDetails), or answering the runtime's own no-op requests, is not recorded."""

    def __init__(self):
        self.replies: list[str] = []
        self._scenario = False
        self._told = True

    def handling(self, own: bool, request_id: int | None = None) -> None:
        """The supervisor decoded a request and hands it to ``_handle_request`` (``own``: one of the runtime's own, not
        a scripted runtime's lockstep; lines carry no ids)."""
        self._scenario, self._told = own, False

    def handled(self) -> None:
        """``_handle_request`` returned (it did not raise) for the request last handed to it."""
        if self._scenario and not self._told:
            self.replies.append(UNANSWERED)
        self._told = True

    def sent(self, data: bytes) -> None:
        """The supervisor wrote ``data`` to its runtime."""
        if not self._scenario or self._told:
            return
        self._told = True
        try:
            line = decode_reply_line(data)
        except FrameError as e:
            self.replies.append(f"undecodable: {e}")
        else:
            self.replies.append("error" if line.error else "ok")


# -- schema validation -----------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def supervisor_schema() -> dict[str, Any]:
    """The installed task-sdk's published JSON Schema of every body (``$defs`` by type name)."""
    try:
        ref = resources.files("airflow.sdk.execution_time.schema").joinpath("schema.json")
    except ModuleNotFoundError:
        raise RuntimeError(
            "validating frame bodies needs apache-airflow-task-sdk: pip install 'finalstate[airflow]'"
        ) from None
    return json.loads(ref.read_text())


@functools.lru_cache(maxsize=None)
def _validator(type_name: str):
    import jsonschema

    schema = supervisor_schema()
    if type_name not in schema["$defs"]:
        raise FrameError(f"unknown body type {type_name!r}: not in the supervisor schema")
    return jsonschema.Draft202012Validator(
        {"$ref": f"#/$defs/{type_name}", "$defs": schema["$defs"]},
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def _as_json(value: Any) -> Any:
    """msgpack timestamps come back as datetimes; the schema describes them as date-time strings."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    return value


def validate_body(body: dict[str, Any]) -> None:
    """Check a body against Airflow's schema for its ``type``; ``FrameError`` names the first problem."""
    type_name = body.get("type") if isinstance(body, dict) else None
    if not isinstance(type_name, str):
        raise FrameError(f"body has no string 'type' discriminator: {_describe(body)}")
    error = next(iter(_validator(type_name).iter_errors(_as_json(body))), None)
    if error is not None:
        where = "/".join(map(str, error.absolute_path)) or "(body)"
        raise FrameError(f"{type_name} body is ill-typed at {where}: {error.message}")


# -- the terminal frames a scenario sends ----------------------------------------------------

_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def terminal_body(frame: str, state: str | None = None, when: dt.datetime = _EPOCH,
                  rendered_map_index: str | None = None) -> dict[str, Any]:
    """The body of one of the runtime's terminal frames, with the fields the Python task runner sets.

    As ``task_runner`` builds them (``_run_task_and_map_outcome``, ``_finalize_task_failure``,
    ``_defer_task``, ``_await_input_task``, ``finalize``): a ``DeferTask`` or ``AwaitInputTask``
    always carries ``next_kwargs`` (the serialised ``kwargs or {}``), which the server requires as
    a dict. Each must pass Airflow's ``schema.json``, the supervisor's decoder and the server's
    request model (``tests/test_bodies.py``). A ``rendered_map_index`` given is carried by each frame
    that has one (``model.scenario.FRAMES_WITH_MAP_INDEX``), as a mapped task with a ``map_index_template``
    sends it; without one the bodies are as a task that is not mapped sends them.
    """
    bodies = {
        "TaskState": {"state": state, "end_date": when, "rendered_map_index": None},
        "SucceedTask": {"state": "success", "end_date": when, "task_outlets": [], "outlet_events": [],
                        "rendered_map_index": None},
        "RetryTask": {"state": "up_for_retry", "end_date": when},
        "DeferTask": {"state": "deferred", "classpath": "finalstate.Trigger", "trigger_kwargs": {},
                      "trigger_timeout": None, "queue": None, "next_method": "execute_complete", "next_kwargs": {}},
        "RescheduleTask": {"state": "up_for_reschedule", "reschedule_date": when, "end_date": when},
        "AwaitInputTask": {"state": "awaiting_input", "timeout": None, "next_method": "execute_complete",
                           "next_kwargs": {}},
        "SkipDownstreamTasks": {"tasks": ["downstream"]},
        "MaskSecret": {"value": "finalstate-secret", "name": None},  # a non-terminal request
    }
    carried = {"rendered_map_index": rendered_map_index} if rendered_map_index and frame in FRAMES_WITH_MAP_INDEX else {}
    return {**bodies[frame], **carried, "type": frame}
