"""The workflows in ``ci/`` that apache/airflow (or an SDK's CI) adopts: valid GitHub Actions workflows, and the SDK
workflow's own logic run as it is written.

Every ``ci/*.yml`` is checked against check-jsonschema's vendored GitHub workflow schema (offline). Of
``ci/finalstate-sdk.yml`` the steps themselves are run here with bash: the ``changes`` step in a git repository of
this test's own (only the SDKs a change touches get a job), the build step with the real ``scripts/build-sdk-runtime``
on an empty checkout (it takes every SDK the matrix can name, and fails only for want of the SDK), and the check step
with a stand-in python that records its arguments, which are then parsed by finalstate's own command line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / "ci").glob("*.yml"))
SDK_WORKFLOW = ROOT / "ci" / "finalstate-sdk.yml"
SDKS = {"go": "Go", "java": "Java", "ts": "TypeScript"}
#: The profile each SDK's job checks under when no repository variable names another.
DEFAULT_PROFILES = {"go": "go-sdk-1.0.0", "java": "java-sdk-1.0.0", "ts": "ts-sdk-1.0.0"}


def schema_checker() -> str:
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or shutil.which("check-jsonschema")
    if checker is None:
        pytest.skip("check-jsonschema is not installed (the dev extra has it)")
    return checker


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_each_workflow_is_a_valid_github_actions_workflow(workflow):
    done = subprocess.run([schema_checker(), "--builtin-schema", "vendor.github-workflows", str(workflow)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_a_broken_workflow_fails_the_check(workflow, tmp_path):
    broken = tmp_path / workflow.name
    text = workflow.read_text()
    assert "runs-on: ubuntu-latest" in text
    broken.write_text(text.replace("runs-on: ubuntu-latest", "runs-on: [1, 2]", 1))
    assert subprocess.run([schema_checker(), "--builtin-schema", "vendor.github-workflows", str(broken)],
                          capture_output=True, timeout=120).returncode != 0


# --- ci/finalstate-sdk.yml, run as it is written ---------------------------------------------------------------------

def sdk_workflow() -> dict:
    yaml = pytest.importorskip("ruamel.yaml", reason="ruamel.yaml (which check-jsonschema brings) reads the workflow")
    return yaml.YAML(typ="safe").load(SDK_WORKFLOW.read_text())


def step(job: str, name: str) -> dict:
    """The step of ``job`` called ``name`` (or whose ``id`` it is)."""
    steps = sdk_workflow()["jobs"][job]["steps"]
    found = [s for s in steps if name in (s.get("name"), s.get("id"))]
    assert len(found) == 1, f"no one step {name!r} in job {job}: {[s.get('name') for s in steps]}"
    return found[0]


def render(text: str, **values: str) -> str:
    """``text`` with each ``${{ ... }}`` evaluated as GitHub does the expressions the workflow uses: a context's
    value (``a.b`` given as ``values['a_b']``; every one used must be given, "" for an unset one), a quoted literal,
    and ``x || y``, the first of them that is not empty."""
    def evaluate(expression: str) -> str:
        for operand in (o.strip() for o in expression.split("||")):
            value = operand[1:-1] if operand.startswith("'") else values[operand.replace(".", "_")]
            if value:
                return value
        return ""

    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: evaluate(m.group(1)), text)


def bash(script: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """Run a step's ``run`` as GitHub's default shell on Linux does (bash -e -o pipefail)."""
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=cwd,
                          env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env},
                          capture_output=True, text=True, timeout=120)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}).stdout.strip()


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A repository shaped like apache/airflow's SDK directories, with one commit: the base of every change."""
    repo = tmp_path / "airflow"
    for path in ("go-sdk/go.mod", "java-sdk/gradlew", "ts-sdk/package.json", "task-sdk/README.md"):
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text("base\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    return repo


def changed_sdks(repo: Path, event: str, base: str, tmp_path: Path) -> list[dict]:
    """Run the ``changes`` job's step in ``repo``; the matrix entries it gives the ``sdk`` job."""
    changes = step("changes", "changed")
    out = tmp_path / "github-output"
    out.write_text("")
    env = {name: render(value, github_event_name=event, github_event_pull_request_base_sha=base,
                        github_event_before="",
                        **{f"vars_FINALSTATE_{sdk.upper()}_SDK_PROFILE": "" for sdk in SDKS})
           for name, value in changes["env"].items()}
    done = bash(changes["run"], repo, {**env, "GITHUB_OUTPUT": str(out)})
    assert done.returncode == 0, done.stdout + done.stderr
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines())
    entries = json.loads(outputs["sdks"])["include"]
    assert outputs["any"] == ("true" if entries else "false")
    return entries


def test_the_workflow_runs_on_a_change_under_each_sdk_and_on_itself():
    on = sdk_workflow()["on"]
    for event in ("pull_request", "push"):
        assert set(on[event]["paths"]) == {"go-sdk/**", "java-sdk/**", "ts-sdk/**",
                                          ".github/workflows/finalstate-sdk.yml"}


@pytest.mark.parametrize("touched,expected", [
    (["ts-sdk/src/coordinator/runtime.ts"], ["ts"]),
    (["go-sdk/pkg/execution/server.go", "java-sdk/sdk/build.gradle.kts"], ["go", "java"]),
    (["task-sdk/README.md"], []),
    ([".github/workflows/finalstate-sdk.yml"], ["go", "java", "ts"]),
])
def test_only_the_changed_sdks_get_a_job(checkout, tmp_path, touched, expected):
    base = git(checkout, "rev-parse", "HEAD")
    for path in touched:
        (checkout / path).parent.mkdir(parents=True, exist_ok=True)
        (checkout / path).write_text("changed\n")
    git(checkout, "add", "-A")
    git(checkout, "commit", "-qm", "the change")
    entries = changed_sdks(checkout, "pull_request", base, tmp_path)
    assert entries == [{"sdk": sdk, "profile": DEFAULT_PROFILES[sdk]} for sdk in expected]


def test_a_manual_run_or_an_unknown_base_checks_every_sdk(checkout, tmp_path):
    every = [{"sdk": sdk, "profile": DEFAULT_PROFILES[sdk]} for sdk in SDKS]
    assert changed_sdks(checkout, "workflow_dispatch", "", tmp_path) == every
    assert changed_sdks(checkout, "push", "0" * 40, tmp_path) == every  # a new branch's first push


def test_every_script_the_workflow_runs_is_there():
    named = set(re.findall(r"\$FINALSTATE/scripts/([\w.-]+)", SDK_WORKFLOW.read_text()))
    assert named == {"bootstrap", "build-sdk-runtime"}
    for script in named:
        assert os.access(ROOT / "scripts" / script, os.X_OK), script


@pytest.mark.parametrize("sdk", SDKS)
def test_the_build_step_takes_every_sdk_and_wants_only_its_checkout(sdk, tmp_path):
    """The build step, verbatim, with the real script on an empty checkout: refused for want of the SDK's files,
    never for its arguments."""
    build = step("sdk", "build the SDK's probe against the change")
    empty = tmp_path / "airflow"
    empty.mkdir()
    done = bash(render(build["run"], matrix_sdk=sdk), ROOT, {"FINALSTATE": str(ROOT), "AIRFLOW": str(empty)})
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"is not an apache/airflow checkout with the {SDKS[sdk]} SDK" in done.stderr


def check_step_argv(sdk: str, tmp_path: Path) -> tuple[list[str], str]:
    """Run the check step verbatim with a stand-in bootstrap whose python records its argv; that argv, and the path
    the JUnit artifact is uploaded from."""
    finalstate = tmp_path / "finalstate"
    (finalstate / "scripts").mkdir(parents=True)
    recorded = tmp_path / "argv.json"
    python = tmp_path / "python"
    python.write_text(f"#!{sys.executable}\nimport json, sys\njson.dump(sys.argv[1:], open({str(recorded)!r}, 'w'))\n")
    bootstrap = finalstate / "scripts" / "bootstrap"
    bootstrap.write_text(f"#!/bin/sh\necho {python}\n")
    for executable in (python, bootstrap):
        executable.chmod(executable.stat().st_mode | stat.S_IEXEC)
    runner_temp = tmp_path / "runner-temp"
    check = step("sdk", "check it under its profile")
    done = bash(render(check["run"], matrix_sdk=sdk, matrix_profile=DEFAULT_PROFILES[sdk]), finalstate,
                {"FINALSTATE": str(finalstate), "AIRFLOW": str(tmp_path / "airflow"), "RUNNER_TEMP": str(runner_temp)})
    assert done.returncode == 0, done.stdout + done.stderr
    upload = next(s for s in sdk_workflow()["jobs"]["sdk"]["steps"] if s.get("uses", "").startswith("actions/upload"))
    return json.loads(recorded.read_text()), render(upload["with"]["path"], runner_temp=str(runner_temp),
                                                    matrix_sdk=sdk)


@pytest.mark.parametrize("sdk", SDKS)
def test_the_check_step_checks_what_the_build_step_built_and_uploads_its_report(sdk, tmp_path):
    argv, uploaded = check_step_argv(sdk, tmp_path)
    assert argv[:3] == ["-m", "impl.frontdoor.cli", "check"]
    options = dict(zip(argv[3::2], argv[4::2]))
    assert options["--target"] == f"cmd:build/runtimes/{sdk}-sdk-runtime"  # what build-sdk-runtime writes and prints
    assert options["--profile"] == f"ci,{DEFAULT_PROFILES[sdk]}"
    assert options["--junit-xml"] == uploaded


@pytest.mark.parametrize("sdk", SDKS)
def test_finalstate_takes_the_check_steps_arguments_as_they_are(sdk, tmp_path, monkeypatch):
    """The recorded argv, parsed by finalstate's own command line (its check command replaced by a recorder)."""
    from impl.frontdoor import cli

    argv, _ = check_step_argv(sdk, tmp_path)
    seen = []
    monkeypatch.setattr(cli, "cmd_check", lambda args: seen.append(args) or 0)
    assert cli.main(argv[2:]) == 0
    monkeypatch.delenv("FINALSTATE_SDK_PROFILE", raising=False)  # _declare sets it; undone after the test
    cli._declare(seen[0])  # what cmd_check does first: the search profile and the SDK profile apart
    assert seen[0].target == f"cmd:build/runtimes/{sdk}-sdk-runtime" and seen[0].profile == "ci"
    assert seen[0].sdk_profile == DEFAULT_PROFILES[sdk]
