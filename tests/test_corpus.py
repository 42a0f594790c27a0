"""The upstream corpus (``corpus/reports``) and ``finalstate corpus``: the reports are well formed, their runs parse,
the corpus replays on the in-process targets with no regression of the recall, and the command's exit status follows
its rule (shown on a corpus made for the test)."""

from __future__ import annotations

import textwrap

import pytest

from impl.findings import corpus
from impl.frontdoor.cli import main
from impl.catalogue.findings import ALL_FINDINGS

REPORTS = corpus.load_corpus()
#: The in-process targets CI replays the corpus on (a coordinator run's own targets are real processes).
IN_PROCESS = ("model", "airflow-inproc", "airflow-task-runner")


def test_the_corpus_holds_at_least_thirty_reports_each_named_by_its_number():
    assert len(REPORTS) >= 30
    assert len({r.number for r in REPORTS}) == len(REPORTS)
    for report in REPORTS:
        assert report.title and report.summary and report.status and report.reported_on
        assert report.url.endswith(f"/{report.number}")


@pytest.mark.parametrize("report", REPORTS, ids=lambda r: str(r.number))
def test_every_run_of_a_checked_report_parses_in_its_kind(report):
    """A report whose verdict is caught or not-a-bug is replayed: each of its runs is a run of the kind it says."""
    if report.verdict.expected == "not-expressible":
        pytest.skip("its runs wait for words of the run languages (the verdict says which)")
    for run in report.runs:
        corpus.parse_run(run)


@pytest.mark.parametrize("report", REPORTS, ids=lambda r: str(r.number))
def test_every_verdict_names_what_it_rests_on(report):
    verdict = report.verdict
    if verdict.expected == "caught":
        assert verdict.invariant and verdict.source and verdict.confidence in corpus.CONFIDENCES
    elif verdict.expected == "not-a-bug":
        assert verdict.source and verdict.why and verdict.confidence in corpus.CONFIDENCES
    else:
        assert verdict.why
    if verdict.finding:
        assert verdict.finding in {f.id for f in ALL_FINDINGS}


def test_the_corpus_replays_in_process_with_no_regression_of_the_recall(capsys):
    """Every failure of the corpus on the in-process targets (the installed release, and the model of every release)
    is a miss the intent catalogue owes an invariant for; any other (an invariant that stopped flagging a report, a
    run that no longer parses, a symptom naming no field, a flagged not-a-bug) is a regression."""
    status, failures = corpus.run_corpus(corpus.CORPUS, IN_PROCESS)
    out = capsys.readouterr().out
    regressions = [str(f) for f in failures if not f.awaiting_catalogue]
    assert not regressions, "\n".join(regressions)
    assert status == (1 if failures else 0)
    with capsys.disabled():  # the recall, said in CI's log
        print("\n" + "\n".join(line for line in out.splitlines() if "recall" in line))


# -- the exit status, on a corpus made for the test ------------------------------------------------------------

def _report(number: int, run: str, symptom: str, verdict: str, kind: str = "supervisor") -> str:
    return textwrap.dedent(f"""\
        number = {number}
        kind = "issue"
        title = "a report made for the test"
        url = "https://github.com/apache/airflow/issues/{number}"
        reported_on = ["1.3.2"]
        status = "open"
        summary = "made for the test"

        [[runs]]
        kind = "{kind}"
        run = "{run}"
        symptom = {symptom}

        [verdict]
        """) + textwrap.dedent(verdict)


CAUGHT = """\
    expected = "caught"
    invariant = "no_task_instance_left_running"
    confidence = "documented"
    source = "the test"
    """
NOT_A_BUG = """\
    expected = "not-a-bug"
    confidence = "documented"
    source = "the test"
    why = "the test says so"
    """
NOT_EXPRESSIBLE = """\
    expected = "not-expressible"
    why = "needs the word 'explode'"
    """
#: F1's run: exit 0 without a terminal frame is SUCCESS with the row left RUNNING (two invariants flag it).
LEFT_RUNNING = ("try_number=1 max_tries=0 should_retry=false; exit 0", '{ row = "running" }')
#: A clean failure, recorded FAILED by finish(): no invariant flags it.
CLEAN_FAILURE = ("try_number=1 max_tries=0 should_retry=false; send TaskState failed; exit 0",
                 '{ final_state = "failed" }')


def _status(tmp_path, *reports: str) -> tuple[int, list]:
    for i, text in enumerate(reports):
        (tmp_path / f"{90000 + i}.toml").write_text(text.replace("number = 0", f"number = {90000 + i}")
                                                    .replace("/issues/0", f"/issues/{90000 + i}"))
    code = main(["corpus", "--corpus", str(tmp_path), "--target", "model"])
    return code, corpus.run_corpus(tmp_path, ("model",), out=lambda line: None)[1]


def test_a_reproducing_report_that_is_caught_passes(tmp_path):
    assert _status(tmp_path, _report(0, *LEFT_RUNNING, CAUGHT)) == (0, [])


def test_a_reproducing_report_no_invariant_flags_fails_the_corpus(tmp_path):
    code, failures = _status(tmp_path, _report(0, *CLEAN_FAILURE, CAUGHT))
    assert code == 1
    assert {f.what for f in failures} == {corpus.MISSED}
    assert not any(f.awaiting_catalogue for f in failures)  # the invariant it names exists: a regression


def test_a_miss_naming_an_invariant_the_catalogue_lacks_is_said_apart(tmp_path):
    code, failures = _status(tmp_path, _report(0, *CLEAN_FAILURE, CAUGHT.replace(
        "no_task_instance_left_running", "an_invariant_nobody_wrote")))
    assert code == 1
    assert failures and all(f.awaiting_catalogue for f in failures)


def test_a_reproducing_report_the_catalogue_calls_benign_passes(tmp_path):
    assert _status(tmp_path, _report(0, *CLEAN_FAILURE, NOT_A_BUG)) == (0, [])


def test_a_flagged_run_the_catalogue_calls_benign_fails_the_corpus(tmp_path):
    code, failures = _status(tmp_path, _report(0, *LEFT_RUNNING, NOT_A_BUG))
    assert code == 1 and {f.what for f in failures} == {corpus.FLAGGED}


def test_a_run_that_does_not_parse_is_not_expressible_only_when_the_verdict_says_so(tmp_path, capsys):
    unparsable = ("try_number=1 max_tries=0 should_retry=false; explode; exit 0", '{ row = "running" }')
    assert _status(tmp_path, _report(0, *unparsable, NOT_EXPRESSIBLE)) == (0, [])
    assert "not expressible yet: unknown event 'explode'" in capsys.readouterr().out
    (tmp_path / "90000.toml").unlink()
    code, failures = _status(tmp_path, _report(0, *unparsable, CAUGHT))
    assert code == 1 and {f.what for f in failures} == {corpus.UNPARSED}


def test_a_report_called_not_expressible_whose_run_parses_is_listed_for_the_switch_not_failed(tmp_path, capsys):
    """Once the word lands the run parses; it is played and shown, and the report is listed until its verdict is
    switched to caught or not-a-bug (from then on its runs must parse and are judged)."""
    assert _status(tmp_path, _report(0, *CLEAN_FAILURE, NOT_EXPRESSIBLE)) == (0, [])
    out = capsys.readouterr().out
    assert "parses now: its verdict can say caught or not-a-bug" in out
    assert "their runs parse now (switch the verdict to caught or not-a-bug): apache/airflow#90000" in out


def test_a_symptom_naming_no_field_of_the_observation_fails_the_corpus(tmp_path):
    code, failures = _status(tmp_path, _report(0, LEFT_RUNNING[0], '{ colour = "red" }', CAUGHT))
    assert code == 1 and {f.what for f in failures} == {corpus.UNKNOWN_FIELD}


def test_a_run_bounded_to_other_releases_is_not_played_on_this_one(tmp_path):
    bounded = _report(0, *CLEAN_FAILURE, CAUGHT).replace("symptom =", 'before = "1.0.1"\nsymptom =')
    code, failures = _status(tmp_path, bounded)
    assert code == 1  # the model of 1.0.0 still reproduces it, and nothing flags it
    assert {f.target for f in failures} == {"model"}


@pytest.mark.parametrize("change, said", [
    (("kind = \"issue\"", "kind = \"discussion\""), "kind must be one of issue, pull"),
    (("status = \"open\"", "status = \"open\"\ncolour = \"red\""), "unknown key(s) 'colour'"),
    (("reported_on = [\"1.3.2\"]", "reported_on = [\"3.1.0\"]"), "reported_on lists the task-sdk releases"),
    (("invariant = \"no_task_instance_left_running\"\n", ""), "a caught report names the invariant"),
])
def test_a_bad_report_is_refused_in_one_line_naming_the_file(tmp_path, change, said):
    (tmp_path / "90000.toml").write_text(_report(90000, *LEFT_RUNNING, CAUGHT).replace(*change))
    with pytest.raises(SystemExit, match="bad corpus report: .*90000.toml.*") as raised:
        main(["corpus", "--corpus", str(tmp_path), "--target", "model"])
    assert said in str(raised.value) and "\n" not in str(raised.value)
