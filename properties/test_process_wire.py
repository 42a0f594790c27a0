"""Bad input on the real wire: what only real processes can send, on ``airflow-process``.

A runtime that sends garbage (a truncated length, an oversized length, bytes that are not
msgpack, an unknown ``type``, ill-typed fields), never answers or never exits must not stop
the checker: every attempt ends within its deadline with an observation that says what
happened. Beyond that, the design promises (``every_request_is_answered`` and the others
below) are checked like any invariant; where the installed release breaks one, that is a
wire finding (``impl/catalogue/findings.py``, ``WIRE_FINDINGS``): a strict expected failure where it
stands (``expect_the_finding``), an ordinary test of the promise elsewhere.

Requests are written on the installed release's wire (``since_1_0_3_length_prefixed_frames``: frames, or JSON
lines before 1.0.3); the byte garbage is garbage on either.
"""

from __future__ import annotations

import json
import os
import time

import msgpack
import pytest
from hypothesis import Phase, given, settings, strategies as st

from impl.catalogue.findings import PROCESS_TARGETS, WIRE_FINDINGS, installed_release
from impl.releases.adapters import since_1_0_3_length_prefixed_frames, since_1_0_6_mask_secret_no_op
from model.scenario import RUNNING, Scenario
from properties.conftest import expect_the_finding

W1, W2, W3, W4, W5 = WIRE_FINDINGS
#: What a strict expected failure of a search here raises: the failing example's AssertionError, or a group of them.
FAILED_SEARCH = (AssertionError, BaseExceptionGroup)

#: Each garbage attempt ends within this (the harness deadline, plus start and slack).
DEADLINE = 3.0
#: The findings' properties stop at their first failing example: it is a strict expected failure
#: whose minimal case is registered, and shrinking would re-run attempts that wait out a deadline.
NO_SHRINK = settings(phases=(Phase.explicit, Phase.reuse, Phase.generate))
#: An unanswered frame is known within this: the supervisor answers a decodable frame at once.
ANSWER_DEADLINE = 1.0
BOUND = DEADLINE + 10.0


@pytest.fixture(scope="module")
def process(target):
    if target.name not in PROCESS_TARGETS:
        pytest.skip(f"the wire is exercised on {', '.join(PROCESS_TARGETS)} only")
    from impl.supervisor_process import target as process

    process.stats()  # the helper starts now (importing Airflow), not within the first attempt's bound
    return process


def framed(fields) -> bytes:
    payload = msgpack.packb(fields, use_bin_type=True)
    return len(payload).to_bytes(4, "big") + payload


def wire_request(request_id: int, body: dict) -> bytes:
    """One request on the installed release's wire: a frame, or a JSON line before 1.0.3."""
    return since_1_0_3_length_prefixed_frames().request(request_id, body)


def _decoded_types() -> frozenset[str]:
    """The body types the installed supervisor decodes (its ``ToSupervisor``)."""
    from impl.supervisor_process.target import decoded_request_types

    return decoded_request_types()


ids = st.integers(1, 2**31 - 1)
#: msgpack carries integers in [-2**63, 2**64).
wire_ints = st.integers(-(2**63), 2**64 - 1)
json_values = st.recursive(st.none() | st.booleans() | wire_ints | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=6)

#: Requests the supervisor can read but not validate: it must not stop on them.
unknown_type = st.builds(lambda i, t, extra: wire_request(i, {**extra, "type": t}), ids,
                         st.text(min_size=1, max_size=20).filter(lambda t: t not in _decoded_types()),
                         st.dictionaries(st.text(max_size=5), json_values, max_size=3))
ill_typed = st.builds(
    lambda i, field, value: wire_request(i, {"type": "TaskState", "state": "failed", "end_date": "2026-01-01T00:00:00Z",
                                        field: value}),
    ids, st.sampled_from(["state", "end_date", "rendered_map_index"]),
    st.one_of(wire_ints, st.lists(wire_ints, max_size=2), st.dictionaries(st.text(max_size=3), wire_ints, max_size=2)),
)
#: Byte streams that end mid-frame: the process exits (or closes) before the frame is whole.
truncated_length = st.binary(min_size=1, max_size=3)
truncated_payload = st.builds(lambda n, data: n.to_bytes(4, "big") + data[: max(0, n - 1)],
                              st.integers(1, 4096), st.binary(max_size=64))
#: A length beyond what the codec allows (16 MiB), bounded here so CI does not allocate gigabytes (W3 does).
oversized_length = st.builds(lambda n, data: n.to_bytes(4, "big") + data,
                             st.integers((16 << 20) + 1, 64 << 20), st.binary(max_size=16))
#: Whole frames whose payload the supervisor's decoder refuses (W1); on JSON lines, bytes that are no JSON line.
undecodable = st.one_of(
    st.builds(lambda junk: len(junk).to_bytes(4, "big") + junk,
              st.binary(min_size=1, max_size=32).filter(lambda b: not _is_request_array(b))),
    st.builds(framed, json_values.filter(lambda v: not isinstance(v, list))),
    st.builds(lambda bad_id: framed([bad_id, {"type": "SucceedTask"}, None]), st.text(max_size=4) | st.floats()),
)


def _is_request_array(payload: bytes) -> bool:
    try:
        value = msgpack.unpackb(payload)
    except Exception:
        return False
    return isinstance(value, list) and 2 <= len(value) <= 3 and isinstance(value[0], int)


survivable = st.one_of(unknown_type, ill_typed, truncated_length, truncated_payload, oversized_length)
endings = st.one_of(st.sampled_from([0, 1, 2, -9, -15]).map(lambda c: ["exit", c]), st.just(["close"]))


def garbage_script(data: bytes, ending: list) -> dict:
    steps = [["log", "about to send garbage"], ["raw", data], ["sleep", 0.02], ending]
    if ending == ["close"]:
        steps.append(["exit", 0])
    return {"steps": steps}


def _supervise(process, script):
    start = time.monotonic()
    observation = process.supervise_script(script, deadline=DEADLINE)
    elapsed = time.monotonic() - start
    assert elapsed < BOUND, f"the attempt took {elapsed:.1f}s"
    return observation


@given(data=survivable, ending=endings)
def test_garbage_the_supervisor_survives_ends_the_attempt(process, data, ending):
    """Truncated or oversized lengths, unknown types, ill-typed fields: the attempt ends by the exit, as ever."""
    observation = _supervise(process, garbage_script(data, ending))
    assert observation.harness is None, observation.to_lines()
    assert observation.raised is None or observation.raised.startswith("ServerResponseError"), observation.to_lines()
    assert observation.row != RUNNING or observation.final_state == "success", observation.to_lines()


def test_malformed_frame_still_ends_the_attempt(process, request):
    """W1's promise: a frame the supervisor cannot decode does not stop it ending the attempt.

    Intent: _cleanup_open_sockets (its comment: the supervisor always releases its resources and exits);
    apache/airflow#66574 (potiuk: a TI stuck RUNNING forever).
    """
    expect_the_finding(request, W1, FAILED_SEARCH)

    @NO_SHRINK
    @given(data=undecodable, code=st.sampled_from([0, 1]))
    def ends(data, code):
        observation = _supervise(process, garbage_script(data, ["exit", code]))
        assert observation.raised is None and observation.final_state != "none", "\n".join(observation.to_lines())

    ends()


def test_every_request_is_answered(process, request):
    """W2's promise: a runtime that awaits the answer to a frame the supervisor refuses gets one (an error).

    Intent: comms.py (the protocol: every request returns a response, even if the frame is otherwise empty).
    """
    expect_the_finding(request, W2, FAILED_SEARCH)

    @NO_SHRINK
    @given(data=st.one_of(unknown_type, ill_typed))
    def answered(data):
        observation = process.supervise_script({"steps": [["raw", data], ["read"], ["exit", 0]]},
                                               deadline=ANSWER_DEADLINE)
        assert observation.harness is None, "\n".join(observation.to_lines())

    answered()


def test_runtime_that_never_answers_or_exits_is_ended_at_the_deadline(process):
    observation = _supervise(process, {"steps": [["log", "hanging"], ["hang"]]})
    assert observation.harness and observation.harness.startswith("deadline"), observation.to_lines()
    assert observation.exit_code == -9


def test_checker_keeps_going_after_garbage(process, target):
    """After a run of garbage, an ordinary scenario still agrees with the model."""
    for data in (b"\x00", b"\x00\x00\x00\x04\xc1\xc1\xc1\xc1", framed([1, {"type": "Nope"}, None])):
        _supervise(process, garbage_script(data, ["exit", 1]))
    scenario = Scenario.from_text("try_number=1 max_tries=2; fault succeed transient; send SucceedTask; exit 0")
    assert target.run(scenario) == target.reference(scenario)


W3_SCRIPT = {"steps": [["raw", b"\xff\xff\xff\xff"], ["sleep", 0.05], ["exit", 1]]}


def test_frame_length_is_bounded(process, request):
    """W3's promise: a length prefix beyond any sane frame is refused at once, not allocated.

    Intent: none found in Airflow, an open question: comms.py gives the frame a 4-byte length and no limit.
    """
    if os.environ.get("FINALSTATE_HEAVY") != "1":
        pytest.skip("set FINALSTATE_HEAVY=1 to reproduce W3: it allocates 4 GiB in the supervisor")
    expect_the_finding(request, W3, AssertionError)
    start = time.monotonic()
    process.supervise_script(W3_SCRIPT, deadline=60)
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize("finding", [W1, W2], ids=lambda f: f.id)
def test_wire_finding_still_reproduces(process, finding):
    """The bug as it shows (the property above checks the promise): where it stands on the installed release."""
    if not finding.stands_on(installed_release()):
        pytest.skip(f"{finding.id} does not stand on task-sdk {installed_release()} (introduced in "
                    f"{finding.introduced_in or 'the first release'}, fixed in {finding.fixed_in or 'none yet'}); "
                    f"test_{finding.invariant} checks its promise there")
    script = {
        "W1": garbage_script(b"\x00\x00\x00\x04\xc1\xc1\xc1\xc1", ["exit", 1]),
        "W2": {"steps": [["raw", wire_request(1, {"type": "NoSuchThing"})], ["read"], ["exit", 0]]},
    }[finding.id]
    observation = process.supervise_script(script, deadline=ANSWER_DEADLINE)
    if finding.id == "W1":
        assert observation.raised == "DecodeError" and observation.row == RUNNING, observation.to_lines()
    else:
        assert observation.harness and observation.harness.startswith("deadline"), observation.to_lines()


def test_log_lines_reach_the_supervisor(process):
    """The logs channel is real: the runtime's JSON lines are read by the supervisor (no stall, no garbage)."""
    line = json.dumps({"level": "info", "event": "x" * 10_000})
    observation = _supervise(process, {"steps": [["log", line], ["exit", 0]]})
    assert observation.exit_code == 0 and observation.harness is None


def test_servers_closed_when_wait_raises(process, target, request):
    """W4's promise: whatever wait() raises, the supervisor closes what it opened.

    Intent: _cleanup_open_sockets (its comment: the supervisor always releases its resources and exits).
    """
    expect_the_finding(request, W4, AssertionError)
    before = process.stats()["closed_for_supervisor"]
    observation = target.run(Scenario.from_text(W4.scenario))
    assert observation.raised is not None  # the finding's premise: F3 makes wait() raise
    left = process.stats()["closed_for_supervisor"] - before
    assert left == 0, f"the supervisor left {left} socket(s) open; the harness closed them"


def test_answer_the_runtime_cannot_take_still_ends_the_attempt(process, request):
    """W5's promise: an answer the runtime can no longer take (it has died, or shut its end) does not stop the
    supervisor ending the attempt once the process has exited.

    Intent: _cleanup_open_sockets (its comment: without it the supervisor would wait for ever on sockets it thinks
    active; it always releases its resources and exits).
    """
    expect_the_finding(request, W5, AssertionError)
    script = {"steps": [["shutdown_reads"], ["raw", request_bytes_of_the_no_op()], ["sleep", 0.05], ["exit", 0]]}
    observation = process.supervise_script(script, deadline=ANSWER_DEADLINE)
    assert observation.harness is None and observation.exit_code == 0, "\n".join(observation.to_lines())


def request_bytes_of_the_no_op() -> bytes:
    """The installed release's no-op request (one the supervisor answers), on its wire."""
    return wire_request(1, since_1_0_6_mask_secret_no_op())
