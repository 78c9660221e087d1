"""Access requests at size: the approver's inbox query, the worker's deadline pass and the origins
access reviews read, over a table of many requests (SQLite file in a temporary directory, the
built-in directory).

    .venv/bin/python bench/requests_bench.py [--requests 50000] [--mine 200]

Seeds ``--requests`` rows by bulk INSERT (40 % pending with deadlines spread over the next 10
days, those among the first ``5 × --mine`` rows waiting for the user ``boss`` (2 × ``--mine``);
40 % granted; 20 % refused), then times
(1 cold + 5 warm runs, median of the warm ones): ``deciding.waiting_for`` for ``boss``;
``fulfilment.origins`` (one dict for a whole review campaign); one ``deciding.tick`` pass over
every pending request (reminders and escalations it decides are rolled back, so each run sees
the same state). Prints numbers; asserts nothing about time."""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from iam import clock  # noqa: E402
from iam.config import load_settings  # noqa: E402
from iam.migrate import upgrade  # noqa: E402
from iam.services import Services  # noqa: E402


def _timed(fn: Any) -> tuple[float, float, Any]:
    t0 = time.perf_counter()
    result = fn()
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(5):
        t0 = time.perf_counter()
        result = fn()
        warm.append(time.perf_counter() - t0)
    return cold * 1000, statistics.median(warm) * 1000, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=50_000)
    ap.add_argument("--mine", type=int, default=200)
    args = ap.parse_args()
    from iam.directory.base import NewUser
    from provisioning import jobs as _jobs  # noqa: F401 — registers sources
    from provisioning.requests.models import AccessRequest
    from provisioning.requests.service import deciding, fulfilment
    from provisioning.requests.service.common import Actor

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            dev_mode=True,
            var_dir=Path(tmp),
            issuer="http://localhost",
            database={"url": f"sqlite:///{tmp}/iam.db"},
            secret_key="bench-secret-key-" + "x" * 32,
            encryption_key="Ck1hYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM=",
        )
        services = Services(settings)
        upgrade(services.engine)
        boss = services.directory.create_user(NewUser(username="boss", given_name="B", enabled=True))
        now = clock.now()
        rows: list[dict[str, Any]] = []
        for i in range(args.requests):
            kind = i % 5
            status = "pending" if kind < 2 else ("granted" if kind < 4 else "refused")
            mine = status == "pending" and i // 5 < args.mine
            rows.append(
                {
                    "item": "records",
                    "requested_item": "records",
                    "group": f"G{i % 300}",
                    "person_sub": f"sub-{i}",
                    "person_username": f"u{i}",
                    "person_name": f"Person {i}",
                    "requested_by": f"u{i}",
                    "scope": "",
                    "justification": "bench",
                    "chain": ["manager"],
                    "step": 0,
                    "approver": "boss" if mine else f"m{i % 2000}" if status == "pending" else None,
                    "step_started_at": now if status == "pending" else None,
                    "step_due_at": now + dt.timedelta(hours=i % 240) if status == "pending" else None,
                    "escalated_to": [],
                    "history": [],
                    "sod_conflicts": [],
                    "sod_exception": False,
                    "status": status,
                    "decision_number": f"AR/2026/{i}" if status == "granted" else None,
                    "granted_at": now if status == "granted" else None,
                    "created_at": now,
                }
            )
        t0 = time.perf_counter()
        with services.transaction() as s:
            s.execute(AccessRequest.__table__.insert(), rows)
        print(f"seeded {args.requests} requests in {time.perf_counter() - t0:.1f} s")
        me = Actor(username="boss", sub=boss.id)

        def inbox() -> int:
            with services.reader() as s:
                return len(deciding.waiting_for(services, s, me))

        def origins() -> int:
            with services.reader() as s:
                return len(fulfilment.origins(services, s))

        def tick() -> dict[str, int]:
            with services.sessions() as s:
                done = deciding.tick(services, s)
                s.rollback()
                return done

        for name, fn in (
            ("inbox (waiting_for boss)", inbox),
            ("origins for a review", origins),
            ("tick", tick),
        ):
            cold, warm, result = _timed(fn)
            print(f"{name:28} cold {cold:8.1f} ms  warm median {warm:8.1f} ms  → {result}")
        services.dispose()


if __name__ == "__main__":
    main()
