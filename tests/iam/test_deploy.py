"""``make run`` installs only what running needs; ``make test`` adds the test tools (issue 10
item 17). deploy/venv.sh is driven with a stand-in for the venv's python that records what pip
was asked to install, so no package is downloaded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$*" >> "{tmp_path}/pip.log"\n')
    python.chmod(0o755)
    return venv


def layer(venv: Path, name: str) -> list[str]:
    """Run deploy/venv.sh NAME; return the installs it asked pip for."""
    log = venv.parent / "pip.log"
    log.unlink(missing_ok=True)
    subprocess.run(
        ["bash", str(ROOT / "deploy" / "venv.sh"), name],
        check=True,
        env={**os.environ, "VENV": str(venv)},
        timeout=60,
    )
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if "install -q -e" in line]


def test_run_installs_no_test_extras_and_test_is_not_skipped_after_run(venv: Path) -> None:
    assert layer(venv, "run") == ["-m pip install -q -e ."]
    assert (venv / ".installed-run").exists() and not (venv / ".installed-test").exists()
    assert layer(venv, "run") == []  # installed: nothing to do
    # after `make run`, `make test` still installs the test extras …
    assert layer(venv, "test") == ["-m pip install -q -e .[test]"]
    assert layer(venv, "test") == []
    # … and a later `make run` finds everything it needs
    assert layer(venv, "run") == []


def test_test_first_then_run(venv: Path) -> None:
    assert layer(venv, "test") == ["-m pip install -q -e .[test]"]
    assert layer(venv, "run") == []


def test_make_run_does_not_ask_for_the_test_layer() -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    dry = subprocess.run(
        [make, "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "deploy/run-dev.sh" in dry and "[test]" not in dry and "venv.sh test" not in dry
    script = (ROOT / "deploy" / "run-dev.sh").read_text()
    assert "deploy/venv.sh run" in script and "[test]" not in script
    assert "deploy/venv.sh test" in (ROOT / "deploy" / "test.sh").read_text()


def test_make_run_writes_the_demo_environment_and_prints_how_to_use_the_cli(tmp_path: Path) -> None:
    """Issue 10 item 18: `make run` tells how to point the CLI at the running demo. The venv is
    a stand-in whose ``iam`` records each call with the settings it got."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    calls = tmp_path / "calls.log"
    iam = venv / "bin" / "iam"
    iam.write_text(
        "#!/bin/sh\n"
        f'echo "$1|$IAM_DEV_MODE|$IAM_VAR_DIR|$IAM_DATABASE__URL|$IAM_ISSUER|$IAM_PIM__SECURITY_OFFICERS"'
        f' >> "{calls}"\n'
        # `serve` runs in the foreground and the script stops the background worker when it
        # returns: wait (bounded) until the worker has been started, as the real server would
        f'if [ "$1" = serve ]; then for i in $(seq 100); do grep -q "^worker|" "{calls}" && break; sleep 0.1; done; fi\n'
    )
    iam.chmod(0o755)
    (venv / "bin" / "python").symlink_to(Path(sys.executable))
    for marker in (".installed-run", ".installed-test"):
        (venv / marker).touch()
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IAM_")}
    env.update(VENV=str(venv), IAM_VAR_DIR=str(var), PORT="5999")
    out = subprocess.run(
        ["bash", str(ROOT / "deploy" / "run-dev.sh")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    env_file = var / "demo.env"
    assert f". {env_file}" in out
    text = env_file.read_text()
    for line in (
        "export IAM_DEV_MODE=true",
        f"export IAM_VAR_DIR='{var}'",
        f"export IAM_DATABASE__URL='sqlite:///{var}/iam.db'",
        "export IAM_ISSUER='http://127.0.0.1:5999'",
        """export IAM_PIM__SECURITY_OFFICERS='["bob"]'""",
    ):
        assert line in text.splitlines()
    # the service, the worker and the demo ran with exactly these settings
    seen = calls.read_text().splitlines()
    assert sorted(line.split("|")[0] for line in seen) == ["db", "demo", "serve", "worker"]
    assert {tuple(line.split("|")[1:]) for line in seen} == {
        ("true", str(var), f"sqlite:///{var}/iam.db", "http://127.0.0.1:5999", '["bob"]')
    }
    # and a shell that sources the file gets them too
    sourced = subprocess.run(
        ["bash", "-c", f'. "{env_file}" && iam status'],
        env={k: v for k, v in os.environ.items() if not k.startswith("IAM_")},
        check=True,
        timeout=60,
    )
    assert sourced.returncode == 0
    assert calls.read_text().splitlines()[-1] == (
        f'status|true|{var}|sqlite:///{var}/iam.db|http://127.0.0.1:5999|["bob"]'
    )
