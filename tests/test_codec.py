"""The wire codec: byte-for-byte Airflow's encoder, Airflow's schema, and clear refusals of bad frames."""

from __future__ import annotations

import datetime as dt

import msgpack
import pytest
from hypothesis import given, strategies as st

from impl.wire import codec
from model.scenario import FRAME_TYPES

comms = pytest.importorskip("airflow.sdk.execution_time.comms", reason="byte-compatibility needs the airflow extra")
msgspec = pytest.importorskip("msgspec")

keys = st.text(min_size=1, max_size=12)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False), st.text(max_size=300),
    st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.timezone.utc)),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
                      max_leaves=12)
bodies = st.builds(lambda d, t: {**d, "type": t}, st.dictionaries(keys, values, max_size=6), st.text(min_size=1, max_size=20))
ids = st.integers(0, 2**32)


@given(ids, bodies, st.one_of(st.none(), st.dictionaries(keys, st.text(max_size=20), max_size=2)))
def test_request_bytes_equal_airflows(frame_id, body, carrier):
    ours = codec.encode_request(codec.RequestFrame(frame_id, body, carrier))
    assert ours == bytes(comms._RequestFrame(id=frame_id, body=body, context_carrier=carrier).as_bytes())
    assert codec.decode_request(ours) == codec.RequestFrame(frame_id, body, carrier)


@given(ids, st.one_of(st.none(), bodies), st.one_of(st.none(), st.dictionaries(keys, values, max_size=3)))
def test_response_bytes_equal_airflows(frame_id, body, error):
    ours = codec.encode_response(codec.ResponseFrame(frame_id, body, error))
    assert ours == bytes(comms._ResponseFrame(id=frame_id, body=body, error=error).as_bytes())
    decoded = msgspec.msgpack.Decoder(comms._ResponseFrame).decode(ours[4:])
    assert (decoded.id, decoded.body, decoded.error) == (frame_id, body, error)


def test_two_field_frames_from_other_runtimes_decode():
    payload = msgpack.packb([3, {"type": "OKResponse", "ok": True}])
    frame = codec.decode_response(len(payload).to_bytes(4, "big") + payload)
    assert frame == codec.ResponseFrame(3, {"type": "OKResponse", "ok": True}, None)


@pytest.mark.parametrize("frame", FRAME_TYPES)
def test_terminal_bodies_are_schema_valid_and_airflow_decodes_them(frame):
    body = codec.terminal_body(frame, "failed" if frame == "TaskState" else None)
    codec.validate_body(body)
    from airflow.sdk.execution_time.supervisor import ActivitySubprocess

    data = codec.encode_request(codec.RequestFrame(1, body))
    wire = msgspec.msgpack.Decoder(comms._RequestFrame).decode(data[4:])
    assert type(ActivitySubprocess.decoder.validate_python(wire.body)).__name__ == frame


def _framed(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


@pytest.mark.parametrize("data, message", [
    (b"\x00\x00", "truncated frame: 2 of 4 length-prefix bytes"),
    (b"\x00\x00\x00\x10" + b"\x92\x01", "truncated frame: length prefix says 16 bytes, 2 arrived"),
    (b"\x7f\xff\xff\xff", "oversized frame: length prefix says 2147483647 bytes"),
    (_framed(b"\xc1\xc1"), "not msgpack"),
    (_framed(msgpack.packb({"a": 1})), "msgpack array of 2 or 3 fields, got dict"),
    (_framed(msgpack.packb([1])), "msgpack array of 2 or 3 fields"),
    (_framed(msgpack.packb(["x", {}])), "frame id must be an integer, got str"),
    (_framed(msgpack.packb([True, {}])), "frame id must be an integer, got bool"),
    (_framed(msgpack.packb([1, [1, 2]])), "frame body must be a map or nil, got list"),
    (_framed(msgpack.packb([1, {"state": "failed"}])), "no string 'type' discriminator"),
    (_framed(msgpack.packb([1, None, 5])), "frame context_carrier must be a map or nil, got int"),
    (_framed(msgpack.packb([1, None])) + b"\x00", "1 stray bytes after a 3-byte frame"),
])
def test_malformed_requests_are_refused_with_the_reason(data, message):
    with pytest.raises(codec.FrameError, match=message.replace("(", r"\(")):
        codec.decode_request(data)


def test_oversized_limit_is_configurable():
    data = _framed(msgpack.packb([1, {"type": "X", "pad": "y" * 100}]))
    with pytest.raises(codec.FrameError, match="limit is 64"):
        codec.decode_request(data, max_frame=64)


@pytest.mark.parametrize("body, message", [
    ({"type": "NoSuchFrame"}, "unknown body type 'NoSuchFrame'"),
    ({"type": "RetryTask"}, "'end_date' is a required property"),
    ({"type": "TaskState", "state": "success"}, "TaskState body is ill-typed at state"),
    ({"type": "SkipDownstreamTasks", "tasks": "a"}, "ill-typed at tasks"),
    ({"type": "RetryTask", "end_date": "yesterday"}, "ill-typed at end_date"),
    ({"state": "failed"}, "no string 'type' discriminator"),
])
def test_ill_typed_bodies_are_refused_by_airflows_schema(body, message):
    with pytest.raises(codec.FrameError, match=message):
        codec.validate_body(body)


@given(st.binary(max_size=64))
def test_any_bytes_decode_or_are_refused_cleanly(data):
    try:
        codec.decode_request(data)
    except codec.FrameError:
        pass


# -- JSON lines (the wire before task-sdk 1.0.3) and what the runtime is told per request ---------------------------

@pytest.mark.parametrize("frame", FRAME_TYPES)
def test_a_request_line_is_what_the_supervisors_decoder_reads(frame):
    """Each terminal body as one JSON line (as a 1.0.x runtime writes it) decodes with the supervisor's own decoder,
    ``validate_json`` as 1.0.x's ``handle_requests`` calls it (datetimes in ISO 8601)."""
    from airflow.sdk.execution_time.supervisor import ActivitySubprocess

    from impl.releases.adapters import request_body

    line = codec.encode_request_line(request_body(frame, "failed", None))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    try:
        decoded = ActivitySubprocess.decoder.validate_json(line)
    except Exception:  # a frame the installed release does not know (AwaitInputTask before 1.3.0)
        from impl.supervisor_process.target import decoded_request_types

        assert frame not in decoded_request_types()
    else:
        assert decoded.type == frame


def test_a_reply_line_is_an_error_only_for_a_failed_request():
    failed = b'{"error":"API_SERVER_ERROR","detail":{"status_code":500},"type":"ErrorResponse"}\n'
    not_found = b'{"error":"VARIABLE_NOT_FOUND","detail":{"key":"k"},"type":"ErrorResponse"}\n'
    assert codec.decode_reply_line(failed).error and codec.decode_reply_line(failed).id is None
    assert codec.decode_reply_line(not_found).body["error"] == "VARIABLE_NOT_FOUND"
    with pytest.raises(codec.FrameError, match="not JSON"):
        codec.decode_reply_line(b"\xc1\n")


def test_line_replies_follow_the_requests_as_the_supervisor_handles_them():
    """One entry per scenario request handled: its line's verdict, ``unanswered`` when none came, none at all when
    its handling raised with nothing written; the lines of StartupDetails and of the runtime's no-op are not replies."""
    failed = b'{"error":"API_SERVER_ERROR","type":"ErrorResponse"}\n'
    replies = codec.LineReplies()
    replies.sent(b'{"type":"StartupDetails"}\n')
    replies.handling(own=True)          # a TaskState: nothing to send
    replies.handled()
    replies.handling(own=True)          # a call that failed: handle_requests answers the error
    replies.sent(failed)
    replies.handling(own=False)         # the lockstep's no-op, answered
    replies.sent(b'{"error":"VARIABLE_NOT_FOUND","type":"ErrorResponse"}\n')
    replies.handled()
    replies.handling(own=True)          # a GetVariable of the scenario's: answered
    replies.sent(b'{"type":"VariableResult","key":"k"}\n')
    replies.handled()
    replies.handling(own=True)          # a call whose handling raised out of handle_requests
    assert replies.replies == ["unanswered", "error", "ok"]
