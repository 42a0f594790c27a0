"""``model.frozen.replace`` is ``attrs.evolve``: the same new value, the same validation, the same refusals."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.frozen import replace
from model.scenario import Fault, RunContext, Scenario
from model.server import Row, Server
from model.supervisor import Supervisor, start


def _states():
    """A supervisor state with every field set, and the values its fields may be replaced with."""
    sup = start(Scenario(RunContext.from_server(1, 1), (), 1, 3))
    return sup, {
        "server": sup.server.arm(Fault("succeed", "lost")),
        "terminal_state": "failed",
        "task_ended": True,
        "failed_heartbeats": 2,
        "exit_code": -15,
        "calls": (),
        "raised": "ReadTimeout",
        "execution_api_retries": 1,
        "map_index_sent": "finalstate-0",
    }


@given(st.data())
def test_replace_makes_what_evolve_makes(data):
    sup, values = _states()
    changes = {name: values[name] for name in data.draw(st.sets(st.sampled_from(sorted(values))))}
    replaced, evolved = replace(sup, **changes), attrs.evolve(sup, **changes)
    assert replaced == evolved
    assert hash(replaced) == hash(evolved)  # the cached hash is the new value's, not the old one's
    assert all(getattr(replaced, f.name) is getattr(evolved, f.name) for f in attrs.fields(Supervisor))


def test_replace_on_each_of_the_models_states():
    server = Server.queued(RunContext.from_server(2, 1))
    assert replace(server, held=3) == attrs.evolve(server, held=3)
    assert replace(server.row, state="running", pid=1) == Row("running", 2, 1, pid=1)
    assert replace(Scenario(), exit_code=1).exit_code == 1


def test_replace_runs_the_validators_and_refuses_a_field_the_class_lacks():
    with pytest.raises(ValueError):
        replace(Scenario(), execution_api_retries=0)
    with pytest.raises(TypeError, match="no field 'try_count'"):
        replace(RunContext(), try_count=2)


def test_replace_refuses_a_class_whose_fields_are_not_all_positional():
    @attrs.frozen
    class KeywordOnly:
        a: int
        b: int = attrs.field(kw_only=True, default=0)

    with pytest.raises(TypeError, match="positional"):
        replace(KeywordOnly(1), a=2)


def test_replace_on_a_class_of_one_field():
    @attrs.frozen
    class One:
        a: int

    assert replace(One(1), a=2) == One(2)
    assert replace(One(1)) == One(1)
