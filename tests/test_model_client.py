"""``model.client`` against Airflow's own client: the default number of tries and which answers are tried again."""

from __future__ import annotations

import httpx
import pytest
from airflow.sdk.api import client as airflow_client
from hypothesis import given, strategies as st

from impl.server.airflow_api import default_attempts
from model import client
from model.scenario import DEFAULT_EXECUTION_API_RETRIES, TIMEOUT, Scenario
from model.server import Server

_REQUEST = httpx.Request("PATCH", "http://execution-api.invalid/")


def test_the_default_is_airflows_shipped_execution_api_retries():
    assert DEFAULT_EXECUTION_API_RETRIES == default_attempts()


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422, 500, 502, 503, 504])
def test_an_answer_is_tried_again_exactly_when_airflows_client_tries_it_again(status):
    error = airflow_client.ServerResponseError.from_response(httpx.Response(status, json={}, request=_REQUEST))
    assert client.tried_again(status) == airflow_client._should_retry_api_request(error)


def test_no_answer_is_tried_again_as_airflows_client_tries_a_read_timeout_again():
    assert client.tried_again(TIMEOUT)
    assert airflow_client._should_retry_api_request(httpx.ReadTimeout("lost", request=_REQUEST))


answers = st.sampled_from([200, 204, 404, 409, 410, 500, 503, TIMEOUT])


@given(st.lists(st.tuples(st.sampled_from(["succeed", "finish", "heartbeat"]), st.lists(answers, min_size=1)),
                max_size=6), st.integers(1, 6))
def test_the_calls_as_seen_are_each_requests_last_try(requests, tries):
    """Record requests through ``request`` (each try answering the next scripted answer), then read them back: each
    request's tries (``requests``), and its last (``as_seen``)."""
    record, each_request, last_answers = [], [], []
    for name, scripted in requests:
        script = iter(scripted * tries)
        _, calls, status = client.request(Server(), lambda s: (s, next(script)), tries, name)
        assert 1 <= len(calls) <= tries
        assert all(client.tried_again(c.status) for c in calls[:-1])
        record += calls
        each_request.append(calls)
        last_answers.append((name, status))
    assert client.requests(tuple(record), tries) == tuple(each_request)
    assert [(c.name, c.status) for c in client.as_seen(tuple(record), tries)] == last_answers


def test_a_scenario_says_its_setting_only_when_it_is_not_the_default():
    text = "try_number=1 max_tries=0 should_retry=false execution_api_retries=1; fault finish transient; exit 1"
    assert Scenario.from_text(text).to_text() == text
    assert Scenario.from_text(text).execution_api_retries == 1
    assert "execution_api_retries" not in Scenario.from_text("fault finish transient; exit 1").to_text()
    with pytest.raises(ValueError, match="execution_api_retries"):
        Scenario.from_text("execution_api_retries=0; exit 0")
