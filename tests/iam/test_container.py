"""The container image and compose file (issue 17 part 2) hold what they promise.

No container runtime runs on the test machines, so the image is not built here: these checks
read the files. What they promise: non-root, read-only root file system, a health check, every
path the Dockerfile copies exists, the compose file names the four services.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_dockerfile_runs_as_non_root_with_a_healthcheck_and_copies_what_exists():
    text = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*healthz", text, re.M)
    for src in re.findall(r"^COPY (?!--from)(\S+(?: \S+)*) \S+$", text, re.M):
        for part in src.split():
            assert (ROOT / part).exists(), f"the Dockerfile copies {part}, which does not exist"


def test_compose_has_the_services_read_only_and_non_root():
    compose = yaml.safe_load((ROOT / "deploy/container/compose.yaml").read_text())
    services = compose["services"]
    assert {"db", "iam", "worker", "nginx", "migrate"} <= set(services)
    for name in ("iam", "worker", "migrate"):
        assert services[name]["read_only"] is True
        assert services[name]["image"] == "iam"
    assert (ROOT / "deploy/container" / "nginx.conf").is_file()
    assert (ROOT / "deploy/nginx/iam-retries.conf").is_file()
