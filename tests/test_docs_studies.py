"""docs/studies.md and docs/gpu.md: every command in their bash/console blocks runs.

Commands run in order in a scratch directory that links ``studies/``. Studies get
``--smoke`` (``--full`` is dropped and ``--n-trials N`` becomes ``ceil(N / 10)``), so
that the whole page runs in a minute or two; ``postgresql://`` storages become
``TUNEKIT_TEST_POSTGRES_URL`` when it is set (the shared study names get a unique
suffix, and the studies are deleted afterwards), else an SQLite file. Without GPUs, the
``--gpus`` commands must fail the documented way: exit status 2, naming the
requested and the visible GPUs.
"""

import importlib.util
import math
import os
import re
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

import optuna
import pytest

from tunekit import cli

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(bash|console)\n(.*?)^```", re.DOTALL | re.MULTILINE)
POSTGRES = re.compile(r"postgresql://\S+")
SHARED_NAMES = re.compile(r"--study(?:-name)? (tune-shared|tune-gpu)\b")


def commands(doc):
    """``(command, expected output lines)`` for every command of a page, in order."""
    found = []
    for kind, body in BLOCK.findall((ROOT / "docs" / doc).read_text(encoding="utf-8")):
        for line in body.splitlines():
            if kind == "console" and not line.startswith("$ "):
                if found and line.strip():
                    found[-1][1].append(line)
                continue
            line = line[2:] if kind == "console" else line
            line = line.split(" # ")[0].strip()
            if line and not line.startswith("#"):
                found.append((line, []))
    return found


def smoke(args):
    out, skip = [], False
    for i, arg in enumerate(args):
        if skip:
            skip = False
        elif arg == "--full":
            continue
        elif arg == "--n-trials":
            out += [arg, str(math.ceil(int(args[i + 1]) / 10))]
            skip = True
        else:
            out.append(arg)
    return out if "--smoke" in out else [*out, "--smoke"]


def study_main(script):
    spec = importlib.util.spec_from_file_location(f"doc_{Path(script).stem}", ROOT / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def run(line, expected, capsys, monkeypatch, storage, suffix=""):
    line = POSTGRES.sub(storage, line)
    line = SHARED_NAMES.sub(lambda m: m.group(0) + suffix, line)
    tokens = shlex.split(line)
    env = {}
    while tokens and re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):
        key, _, value = tokens.pop(0).partition("=")
        env[key] = value
    with monkeypatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        if tokens[0] == "python" and tokens[1].startswith("studies/"):
            code = study_main(tokens[1])(smoke(tokens[2:]))
        elif tokens[:2] == ["tunekit", "run"]:
            code = cli.main(["run", *smoke(tokens[2:])])
        elif tokens[:2] == ["tunekit", "report"]:
            code = cli.main(tokens[1:])
        elif tokens[0] == "nvidia-smi":
            if shutil.which("nvidia-smi") is None:
                assert cli.visible_gpus() == []  # what tunekit run checks --gpus against
                return
            code = subprocess.run(tokens, check=False).returncode
        else:
            pytest.fail(f"a documented command this test cannot run: {line!r}")
    out, err = capsys.readouterr()
    if "--gpus" in tokens and not cli.visible_gpus():
        assert code == 2, (line, err)
        assert "that this machine does not have; visible GPUs: none" in err
    else:
        assert code == 0, (line, out, err)
    for text in expected:  # a console block's output, checked where this machine can show it
        if "--gpus" not in tokens or not cli.visible_gpus():
            assert text.strip() in (out + err), (line, text)


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    (tmp_path / "studies").symlink_to(ROOT / "studies")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def shared(tmp_path):
    """``(storage, suffix)`` standing in for the pages' PostgreSQL database."""
    url = os.environ.get("TUNEKIT_TEST_POSTGRES_URL")
    if not url:
        yield f"sqlite:///{tmp_path}/shared.db", ""
        return
    suffix = f"-{uuid.uuid4().hex[:8]}"
    yield url, suffix
    for name in optuna.get_all_study_names(storage=url):
        if name.endswith(suffix):
            optuna.delete_study(study_name=name, storage=url)


def test_the_pages_document_every_study_and_the_command_line():
    text = " ".join(line for line, _ in commands("studies.md") + commands("gpu.md"))
    for name in ("overfit_first", "regularization", "more_data", "tune", "imdb_listing_5_13"):
        assert f"python studies/{name}.py" in text
    for usage in ("--workers 2", "--gpus 0,1", "--gpus all", "tunekit report", "postgresql://"):
        assert usage in text


@pytest.mark.slow  # every study of the page, and tunekit run's worker processes: minutes
def test_every_command_of_studies_md_runs(scratch, shared, capsys, monkeypatch):
    storage, suffix = shared
    for line, expected in commands("studies.md"):
        run(line, expected, capsys, monkeypatch, storage, suffix)
    results = scratch / "results"
    for name in ("overfit_first", "regularization", "more_data", "tune", "imdb_listing_5_13"):
        assert (results / name / "leaderboard.md").stat().st_size > 0, name
    assert (scratch / "tune.csv").read_text().startswith("candidate,")
    assert (scratch / "more-data-report" / "leaderboard.html").is_file()
    # the resumed tune study holds the trials asked for last, each run once
    study = optuna.load_study(study_name="tune-smoke", storage="sqlite:///results/tune/study.db")
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 2
    # the workers ran each configuration of the plan once
    study = optuna.load_study(
        study_name="regularization-wine-smoke", storage="sqlite:///results/regularization/study.db"
    )
    params = [tuple(sorted(t.params.items())) for t in study.get_trials(deepcopy=False)]
    assert len(params) == len(set(params)) == 2
    study = optuna.load_study(study_name=f"tune-shared{suffix}", storage=storage)
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) >= 2


def test_every_command_of_gpu_md_runs_or_fails_the_documented_way(
    scratch, shared, capsys, monkeypatch
):
    storage, suffix = shared
    for line, expected in commands("gpu.md"):
        run(line, expected, capsys, monkeypatch, storage, suffix)
