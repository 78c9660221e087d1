"""Lag between the end of an elevation and the removal of access in Active Directory.

Against the Samba AD DC of the tests (started or reused by ``deploy/samba-up.sh``, as root):
creates a throwaway OU with people, privileged groups and admin accounts; approves N elevations
(default 100: 20 people x 5 roles) whose ends are spread over a few seconds of real time; runs a
real ``iam`` worker (default poll interval) and reads, for each elevation, when the directory
write that removed the group membership (and disabled the account after the person's last one)
completed. Prints p50 / p90 / p99 / max of (removal done - end).

    .venv/bin/python bench/pim_expiry_lag.py [--people 25] [--roles 4] [--spread 200]

Results on the 2-core development machine (shared), Samba AD DC, SQLite, one worker:

- ends spread over 200 s (one every 2 s, as independent elevations end):
  100 elevations, p50 0.77 s, p90 1.20 s, p99 1.52 s, max 1.78 s.
- burst, ends spread over 10 s (10 ends a second, ``--people 20 --roles 5 --spread 10``):
  p50 28 s, p99 45 s — one worker removes about 2-3 elevations a second from Samba (each is
  2-6 LDAP round trips). Run more ``iam worker`` processes for such bursts: directory writes
  happen outside the database lock, so workers remove in parallel.
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import select, update  # noqa: E402

import pim.jobs  # noqa: E402,F401 — registers the handlers
from iam import clock, jobs  # noqa: E402
from iam.config import PimSettings, load_settings  # noqa: E402
from iam.directory.ad import ActiveDirectory  # noqa: E402
from iam.identities import upsert_identity  # noqa: E402
from iam.jobs import Worker  # noqa: E402
from iam.migrate import upgrade  # noqa: E402
from iam.models.jobs import Job  # noqa: E402
from iam.services import Services  # noqa: E402
from pim import service  # noqa: E402
from pim.models import ElevationRequest  # noqa: E402
from pim.service import Actor  # noqa: E402
from tests.samba import BASE_DN, _start  # noqa: E402
from tests.sso.helpers import make_user  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=25)
    ap.add_argument("--roles", type=int, default=4)
    ap.add_argument("--spread", type=float, default=200.0, help="seconds over which the ends fall")
    args = ap.parse_args()

    dc = _start()
    tag = secrets.token_hex(3)
    ou = f"OU=t-bench-{tag},{BASE_DN}"
    dc.admin(lambda conn: conn.add(ou, ["top", "organizationalUnit"]))
    tmp = Path(tempfile.mkdtemp(prefix="pim-bench-"))
    roles_dir = tmp / "roles"
    roles_dir.mkdir()
    groups = [f"PIM Bench {tag} {i}" for i in range(args.roles)]
    for i, g in enumerate(groups):
        (roles_dir / f"r{i}.toml").write_text(f'groups = ["{g}"]\napproval = false\nmax_minutes = 60\n')
    settings = load_settings(
        dev_mode=True,
        var_dir=tmp,
        issuer="http://localhost",
        database={"url": f"sqlite:///{tmp}/iam.db"},
        directory={
            **dc.settings.model_dump(),
            "bind_password": dc.settings.bind_password.get_secret_value(),
            "users_ou": ou,
            "groups_ou": ou,
        },
    )
    settings.pim = PimSettings(roles_dir=roles_dir, security_officers=["bench"], admin_accounts_ou=ou)
    services = Services(settings)
    upgrade(services.engine)
    directory: ActiveDirectory = services.directory  # type: ignore[assignment]
    try:
        for g in groups:
            directory.create_group(g)
        officer = Actor.operator("bench")
        people = []
        for i in range(args.people):
            user = make_user(services, f"p{tag}{i}", password="Bench-Passw0rd-1")
            with services.transaction() as s:
                upsert_identity(s, user, kind="ad")
                for r in range(args.roles):
                    service.add_eligibility(s, services, actor=officer, role=f"r{r}", username=user.username)
            people.append(user)
        print(f"setup: {len(people)} people, {args.roles} roles; creating admin accounts …", flush=True)
        while jobs.run_due(services, limit=50):
            pass
        ids = []
        with services.transaction() as s:
            for user in people:
                actor = Actor(sub=user.id, username=user.username, level="mfa")
                for r in range(args.roles):
                    req = service.request_elevation(
                        s, services, actor=actor, role=f"r{r}", minutes=60, justification="benchmark run"
                    )
                    ids.append(req.id)
        print(f"granting {len(ids)} elevations in AD …", flush=True)
        while jobs.run_due(services, limit=50):
            pass
        # spread the ends over the next seconds of real time (both the row and its expiry job)
        start = clock.now() + dt.timedelta(seconds=3)
        with services.transaction() as s:
            for k, rid in enumerate(ids):
                end = start + dt.timedelta(seconds=args.spread * k / len(ids))
                s.execute(update(ElevationRequest).where(ElevationRequest.id == rid).values(ends_at=end))
                s.execute(
                    update(Job)
                    .where(Job.kind == "pim.expire", Job.payload["request_id"].as_string() == rid)
                    .values(run_at=end)
                )
        worker = Worker(services)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + args.spread + 120
        while time.monotonic() < deadline:
            with services.reader() as s:
                left = s.scalar(
                    select(ElevationRequest.id).where(
                        ElevationRequest.id.in_(ids), ElevationRequest.removed_at.is_(None)
                    )
                )
            if left is None:
                break
            time.sleep(0.5)
        worker.stop_event.set()
        thread.join(30)
        with services.reader() as s:
            rows = s.execute(
                select(ElevationRequest.ends_at, ElevationRequest.removed_at).where(
                    ElevationRequest.id.in_(ids)
                )
            ).all()
        lags = [(removed - ends).total_seconds() for ends, removed in rows if ends and removed]
        missing = len(ids) - len(lags)
        print(f"elevations: {len(ids)}  removed: {len(lags)}  not removed: {missing}")
        if lags:
            print(
                "removal lag after the end (s): "
                f"p50 {statistics.median(lags):.2f}  p90 {pct(lags, 90):.2f}  p99 {pct(lags, 99):.2f}  "
                f"max {max(lags):.2f}  (worker poll interval {settings.worker.poll_interval} s, "
                f"sweep {settings.pim.sweep_interval} s)"
            )
    finally:
        directory.close()
        dc.delete_tree(ou)
        services.dispose()


if __name__ == "__main__":
    main()
