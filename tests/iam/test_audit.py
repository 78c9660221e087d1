"""The tamper-evident audit log (R-AUD-1..3) on SQLite and PostgreSQL.

Each event is one INSERT carrying an HMAC of its content (``row_hash``); :func:`iam.audit.seal`
later links rows into a hash chain (``seq``, ``prev_hash``, ``hash``) and moves the head row.
Tampering is done the way an intruder with database access would do it: plain SQL against the
tables, bypassing :mod:`iam.audit`.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from iam import audit, clock, jobs
from iam.audit import GENESIS, Severity
from iam.config import AuditSettings, MailSettings
from iam.models.audit import AuditEvent, AuditHead
from iam.models.jobs import Job, JobStatus
from iam.services import Services
from tests.smtp import SmtpSink

EVENTS = AuditEvent.__table__
HEAD = AuditHead.__table__


# -- helpers ----------------------------------------------------------------------------------
def write_events(services: Services, n: int, *, event: str = "test.event") -> list[int]:
    """Append ``n`` events, each in its own transaction, with every column filled; their ids."""
    ids = []
    for i in range(n):
        with services.transaction() as s:
            ids.append(
                audit.record(
                    s,
                    event,
                    severity=Severity.NORMAL,
                    outcome="success",
                    actor=f"actor-{i}",
                    subject=f"subject-{i}",
                    client_id=f"client-{i}",
                    ip=f"192.0.2.{i + 1}",
                    user_agent=f"agent/{i}",
                    details={"n": i, "note": "ok"},
                )
            )
    return ids


def seal_all(services: Services) -> int:
    total = 0
    with services.transaction() as s:
        while n := audit.seal(s):
            total += n
    return total


def verify(services: Services) -> audit.VerifyResult:
    with services.transaction() as s:
        return audit.verify(s)


def raw(services: Services, stmt: Any) -> None:
    """Run one statement directly on the engine (an intruder's UPDATE / DELETE / INSERT)."""
    with services.engine.begin() as conn:
        conn.execute(stmt)


def rolled_back(services: Services, work: Any) -> None:
    """Run ``work(session)`` in a transaction that then fails and rolls back."""

    def change_that_fails() -> None:
        with services.transaction() as s:
            work(s)
            raise RuntimeError("the change being audited failed")

    with pytest.raises(RuntimeError, match="the change being audited failed"):
        change_that_fails()


def row_by_id(services: Services, event_id: int) -> dict[str, Any]:
    with services.engine.connect() as conn:
        return dict(conn.execute(select(EVENTS).where(EVENTS.c.id == event_id)).mappings().one())


def row_by_seq(services: Services, seq: int) -> dict[str, Any]:
    with services.engine.connect() as conn:
        return dict(conn.execute(select(EVENTS).where(EVENTS.c.seq == seq)).mappings().one())


def count_rows(services: Services) -> int:
    with services.transaction() as s:
        return audit.count(s)


@pytest.fixture
def chain(services: Services) -> tuple[Services, list[int]]:
    """Five events (after the fixture's keys.created), all sealed; returns their seqs."""
    ids = write_events(services, 5)
    seal_all(services)
    seqs = [row_by_id(services, i)["seq"] for i in ids]
    assert verify(services).ok
    return services, seqs


# -- the stored format ------------------------------------------------------------------------
def test_hash_format_is_fixed_so_old_logs_still_verify() -> None:
    """Known-answer values: a log written by an earlier release must verify after an upgrade, so
    the key derivation, the canonical form of a row and the inputs of every MAC never change."""
    key = audit.audit_key("k" * 40)
    assert key.hex() == "6dc6217332c3165fe6d2e5f12c486a6d8a7d0defe27e07d1d6b25ab96f9aef95"
    row = {
        "nonce": "00" * 16,
        "at": dt.datetime(2026, 1, 2, 4, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        "event": "login",
        "severity": "normal",
        "outcome": "success",
        "actor": "alice",
        "subject": "s-1",
        "client_id": None,
        "ip": "192.0.2.1",
        "user_agent": None,
        "details": {"b": 1, "a": "é"},
    }
    row_hash = audit._row_hash(key, row)
    assert row_hash == "f30f3fbf828e371079c7ad260fd8c010963ed6595e702512342889c6929bebfd"
    link = audit._link(key, GENESIS, 1, row_hash)
    assert link == "3ba667fdc021ed252fcca95c8b9882a1db7f27e8c7fa5a683ca4e8fda4dc06a7"
    assert audit._head_mac(key, 1, link) == "9ffe64b7d42c6e35655846f1ddb717f637f7baf6b3dcdd720a2eb436f237edce"


def test_events_are_read_in_chain_order_page_by_page(services: Services) -> None:
    """Export and verify read the log in pages: every sealed row once, in sequence order (not id
    order), then every unsealed row once, in id order."""
    gone, _kept = write_events(services, 2)
    raw(services, delete(EVENTS).where(EVENTS.c.id == gone))  # from here on ids and seqs differ
    write_events(services, 3)
    seal_all(services)
    later = write_events(services, 3)
    with services.transaction() as s:
        sealed = [(e.seq, e.id) for e in audit.iter_events(s, batch=2)]
        assert [seq for seq, _ in sealed] == list(range(1, len(sealed) + 1))
        assert len(sealed) >= 4 and sealed[-1][1] > sealed[-1][0]
        assert [e.id for e in audit.iter_events(s, batch=2, sealed=False)] == later


# -- writing and sealing ----------------------------------------------------------------------
def test_record_writes_an_unsealed_row_protected_by_its_hmac(services: Services) -> None:
    """R-AUD-3: a new event is protected at once by its row HMAC, sealed into the chain later."""
    before = count_rows(services)
    [event_id] = write_events(services, 1)
    r = row_by_id(services, event_id)
    assert (r["seq"], r["prev_hash"], r["hash"]) == (None, None, None)
    assert len(r["row_hash"]) == 64 and int(r["row_hash"], 16) >= 0
    assert count_rows(services) == before + 1
    result = verify(services)
    assert result.ok and result.unsealed == before + 1


def test_seal_links_rows_in_id_order(services: Services) -> None:
    """R-AUD-3: sealing gives contiguous seq in write order, each row linked to the previous
    one's hash; the head holds the last seq and hash; later events continue the chain."""
    ids = write_events(services, 3)
    total = count_rows(services)
    assert seal_all(services) == total
    with services.transaction() as s:
        rows = list(s.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
        head = s.get(AuditHead, 1)
    assert [r.seq for r in rows] == list(range(1, total + 1))
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert [r.id for r in rows][-3:] == ids
    assert rows[0].prev_hash == GENESIS
    for prev, cur in zip(rows, rows[1:], strict=False):
        assert cur.prev_hash == prev.hash
    assert len({r.hash for r in rows}) == len(rows)
    assert head is not None and (head.seq, head.hash) == (total, rows[-1].hash)
    assert verify(services) == audit.VerifyResult(True, total, unsealed=0)

    assert seal_all(services) == 0
    [later] = write_events(services, 1)
    assert seal_all(services) == 1
    assert row_by_id(services, later)["seq"] == total + 1
    assert row_by_id(services, later)["prev_hash"] == rows[-1].hash
    assert verify(services) == audit.VerifyResult(True, total + 1, unsealed=0)


def test_seal_respects_its_limit(services: Services) -> None:
    write_events(services, 4)
    total = count_rows(services)
    with services.transaction() as s:
        assert audit.seal(s, limit=2) == 2
    result = verify(services)
    assert (result.ok, result.checked, result.unsealed) == (True, 2, total - 2)
    assert seal_all(services) == total - 2


def fresh_install(services: Services) -> None:
    """No events, no head and no anchor: a database that never held an audit event."""
    raw(services, delete(EVENTS))
    raw(services, delete(HEAD))
    services.audit_anchor.forget()
    services.audit_anchor.path.unlink(missing_ok=True)


def test_empty_log_verifies(services: Services) -> None:
    """R-AUD-3: a log that never held an event (no rows, no head, no anchor) is intact."""
    fresh_install(services)
    assert verify(services) == audit.VerifyResult(True, 0)
    assert seal_all(services) == 0
    assert verify(services) == audit.VerifyResult(True, 0)


def test_worker_seals_new_events(services: Services) -> None:
    """R-AUD-3: the worker's periodic task seals new rows into the chain."""
    import iam.core_jobs  # noqa: F401 — registers the iam.audit.seal periodic task

    [event_id] = write_events(services, 1)
    jobs.Worker(services).tick()
    assert row_by_id(services, event_id)["seq"] is not None
    assert verify(services).unsealed == 0


def test_record_stores_r_aud_1_fields(services: Services) -> None:
    """R-AUD-1: user, UTC time, network address, event type, object and outcome are recorded."""
    at = dt.datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
    clock.freeze(at)
    with services.transaction() as s:
        event_id = audit.record(
            s,
            "login.failed",
            outcome="failure",
            actor="alice",
            subject="sub-1",
            client_id="rp",
            ip="198.51.100.7",
            user_agent="x" * 600,
            details={"reason": "bad_credentials"},
        )
    r = row_by_id(services, event_id)
    assert r["at"] == at
    assert r["at"].tzinfo is not None and r["at"].utcoffset() == dt.timedelta(0)
    assert (r["event"], r["outcome"], r["actor"], r["subject"]) == (
        "login.failed",
        "failure",
        "alice",
        "sub-1",
    )
    assert (r["client_id"], r["ip"], r["severity"]) == ("rp", "198.51.100.7", "normal")
    assert r["user_agent"] == "x" * 512
    assert r["details"] == {"reason": "bad_credentials"}
    assert verify(services).ok


# -- tampering --------------------------------------------------------------------------------
CONTENT_COLUMNS = list(audit.CONTENT)


def _changed(column: str, original: Any) -> Any:
    if column == "at":
        return original + dt.timedelta(microseconds=1)
    if column == "details":
        return {**original, "n": original["n"] + 100}
    if column in ("prev_hash", "hash", "row_hash"):
        return "f" * 64
    if column == "severity":
        return "critical"
    if column == "outcome":
        return "failure"
    return f"{original}-forged"


@pytest.mark.parametrize("column", [*CONTENT_COLUMNS, "row_hash"])
def test_changed_content_of_sealed_row_is_detected(chain: tuple[Services, list[int]], column: str) -> None:
    """R-AUD-3: an UPDATE of any content column (or the row HMAC) of a middle row is reported
    at that row."""
    services, seqs = chain
    target = seqs[2]
    original = row_by_seq(services, target)[column]
    raw(services, update(EVENTS).where(EVENTS.c.seq == target).values({column: _changed(column, original)}))
    result = verify(services)
    assert (result.ok, result.seq, result.checked) == (False, target, target - 1)
    assert result.problem == f"row {target} was changed"


@pytest.mark.parametrize("column", ["prev_hash", "hash"])
def test_changed_link_of_sealed_row_is_detected(chain: tuple[Services, list[int]], column: str) -> None:
    services, seqs = chain
    target = seqs[2]
    raw(services, update(EVENTS).where(EVENTS.c.seq == target).values({column: "f" * 64}))
    result = verify(services)
    assert (result.ok, result.seq) == (False, target)
    assert result.problem == f"the chain is broken at row {target}"


@pytest.mark.parametrize("column", CONTENT_COLUMNS)
def test_changed_content_of_unsealed_row_is_detected(services: Services, column: str) -> None:
    """R-AUD-3: rows not yet sealed are protected by their HMAC alone."""
    seal_all(services)
    ids = write_events(services, 3)
    original = row_by_id(services, ids[1])[column]
    raw(services, update(EVENTS).where(EVENTS.c.id == ids[1]).values({column: _changed(column, original)}))
    result = verify(services)
    assert not result.ok
    assert result.problem == f"unsealed row id {ids[1]} was changed"
    # sealing does not launder it
    seal_all(services)
    sealed = verify(services)
    assert not sealed.ok and sealed.seq == row_by_id(services, ids[1])["seq"]


def test_reordered_json_keys_are_not_tampering(chain: tuple[Services, list[int]]) -> None:
    """R-AUD-3: a database re-serialising ``details`` with other key order is no false alarm."""
    services, seqs = chain
    cast = "CAST(:d AS json)" if services.engine.dialect.name == "postgresql" else ":d"
    raw(
        services,
        text(f"UPDATE audit_events SET details = {cast} WHERE seq = :s").bindparams(
            d='{"note": "ok", "n": 2}', s=seqs[2]
        ),
    )
    assert verify(services).ok


def test_deleted_middle_row_is_detected(chain: tuple[Services, list[int]]) -> None:
    services, seqs = chain
    raw(services, delete(EVENTS).where(EVENTS.c.seq == seqs[2]))
    result = verify(services)
    assert (result.ok, result.seq, result.checked) == (False, seqs[2], seqs[2] - 1)
    assert result.problem == f"sealed row {seqs[2]} is missing"


@pytest.mark.parametrize("how_many", [1, 2])
def test_deleted_tail_is_detected(chain: tuple[Services, list[int]], how_many: int) -> None:
    """R-AUD-3: deleting the last row(s) is seen through the head's sequence number."""
    services, seqs = chain
    last = seqs[-1]
    kept = last - how_many
    raw(services, delete(EVENTS).where(EVENTS.c.seq > kept))
    result = verify(services)
    assert (result.ok, result.seq, result.checked) == (False, kept + 1, kept)
    assert result.problem == f"sealed rows after {kept} were deleted (the head says {last})"


def test_deleting_every_row_is_detected(chain: tuple[Services, list[int]]) -> None:
    services, seqs = chain
    raw(services, delete(EVENTS))
    result = verify(services)
    assert (result.ok, result.seq, result.checked) == (False, 1, 0)
    assert f"the head says {seqs[-1]}" in (result.problem or "")


def test_missing_head_is_detected(chain: tuple[Services, list[int]]) -> None:
    services, _ = chain
    raw(services, delete(HEAD))
    assert not verify(services).ok


def _forged(seq: int | None, prev: str | None, key: bytes) -> dict[str, Any]:
    """A row as an intruder who knows the algorithm, but not the secret key, would make it."""
    body = {
        "nonce": "f" * 32,
        "at": clock.now(),
        "event": "admin.granted",
        "severity": "normal",
        "outcome": "success",
        "actor": "mallory",
        "subject": "mallory",
        "client_id": None,
        "ip": None,
        "user_agent": None,
        "details": {},
    }
    row_hash = audit._row_hash(key, body)
    sealed = (
        {}
        if seq is None
        else {"seq": seq, "prev_hash": prev, "hash": audit._link(key, prev or "", seq, row_hash)}
    )
    return {**body, "row_hash": row_hash, **sealed}


def test_forged_unsealed_row_is_detected(chain: tuple[Services, list[int]]) -> None:
    """R-AUD-3: a row inserted without the key fails its HMAC, before and after sealing."""
    services, _ = chain
    raw(services, insert(EVENTS).values(**_forged(None, None, audit.audit_key("guessed secret"))))
    result = verify(services)
    assert not result.ok and (result.problem or "").startswith("unsealed row id")
    seal_all(services)
    assert not verify(services).ok


def test_forged_row_appended_with_head_moved_is_detected(chain: tuple[Services, list[int]]) -> None:
    services, seqs = chain
    last = row_by_seq(services, seqs[-1])
    forged = _forged(seqs[-1] + 1, last["hash"], audit.audit_key("guessed secret"))
    raw(services, insert(EVENTS).values(**forged))
    raw(services, update(HEAD).values(seq=forged["seq"], hash=forged["hash"]))
    result = verify(services)
    assert (result.ok, result.seq) == (False, forged["seq"])
    assert result.problem == f"row {forged['seq']} was changed"


def test_forged_row_inserted_in_the_middle_is_detected(chain: tuple[Services, list[int]]) -> None:
    """R-AUD-3: renumbering the tail to slip a row in is reported at the inserted row."""
    services, seqs = chain
    at = seqs[3]
    for seq in reversed(seqs[3:]):  # one by one from the top: seq stays unique
        raw(services, update(EVENTS).where(EVENTS.c.seq == seq).values(seq=seq + 1))
    raw(services, update(HEAD).values(seq=seqs[-1] + 1))
    prev = row_by_seq(services, seqs[2])["hash"]
    raw(services, insert(EVENTS).values(**_forged(at, prev, audit.audit_key("nope"))))
    result = verify(services)
    assert (result.ok, result.seq, result.checked) == (False, at, at - 1)


def test_changed_head_hash_is_detected(chain: tuple[Services, list[int]]) -> None:
    services, seqs = chain
    raw(services, update(HEAD).values(hash="a" * 64))
    result = verify(services)
    assert (result.ok, result.checked) == (False, seqs[-1])
    assert "head" in (result.problem or "")


def test_changed_head_seq_is_detected(chain: tuple[Services, list[int]]) -> None:
    services, seqs = chain
    raw(services, update(HEAD).values(seq=seqs[-1] + 3))
    result = verify(services)
    assert not result.ok
    assert result.problem == "the chain head was changed"


def test_truncated_tail_with_rewound_head_is_detected(chain: tuple[Services, list[int]]) -> None:
    """R-AUD-3: deleting the last rows and pointing the head at the new last row is noticed."""
    services, seqs = chain
    kept = row_by_seq(services, seqs[2])
    raw(services, delete(EVENTS).where(EVENTS.c.seq > kept["seq"]))
    raw(services, update(HEAD).values(seq=kept["seq"], hash=kept["hash"]))
    assert not verify(services).ok


def test_deleted_middle_row_resealed_by_the_worker_is_detected(
    chain: tuple[Services, list[int]], caplog: pytest.LogCaptureFixture
) -> None:
    """R-AUD-3: a row deleted from the middle stays detectable even if the rows after it are
    turned back into unsealed rows for the worker to seal again."""
    services, seqs = chain
    victim = seqs[2]
    before = row_by_seq(services, victim - 1)
    raw(services, delete(EVENTS).where(EVENTS.c.seq == victim))
    raw(services, update(EVENTS).where(EVENTS.c.seq > victim).values(seq=None, prev_hash=None, hash=None))
    raw(services, update(HEAD).values(seq=before["seq"], hash=before["hash"]))
    with pytest.raises(audit.TamperedHead) as refused:  # the worker refuses to seal onto a rewound head
        seal_all(services)
    assert str(refused.value) == "The audit chain head was changed outside the application."
    # and says so at once on the security log
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records if r.name == "security"] == [
        ("security", "CRITICAL", "audit chain head was tampered with; sealing stopped")
    ]
    assert not verify(services).ok


def test_replayed_row_is_detected(chain: tuple[Services, list[int]]) -> None:
    """R-AUD-3: duplicating an event (e.g. a grant) is detected as an inserted row."""
    services, seqs = chain
    original = row_by_seq(services, seqs[1])
    copy = {k: original[k] for k in (*audit.CONTENT, "row_hash")}
    with pytest.raises(IntegrityError):  # row_hash is unique: an exact copy cannot be stored
        raw(services, insert(EVENTS).values(**copy))
    copy["nonce"] = "0" * 32  # nor one with another nonce (it would fail its HMAC anyway)
    with pytest.raises(IntegrityError):
        raw(services, insert(EVENTS).values(**copy))
    assert verify(services).ok


def test_verify_uses_the_secret_key(chain: tuple[Services, list[int]]) -> None:
    """R-AUD-3: a log written under one secret key does not verify under another."""
    services, _ = chain
    s = services.sessions(info={"iam.audit_key": audit.audit_key("another secret key")})
    try:
        result = audit.verify(s)
    finally:
        s.close()
    assert (result.ok, result.seq) == (False, 1)


# -- what may be recorded ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "key", ["password", "secret", "client_secret", "token", "code", "refresh_token", "Password"]
)
def test_details_with_secret_keys_are_refused(sqlite_services: Services, key: str) -> None:
    """R-AUD-4: the log keeps metadata, never secrets: such details raise and nothing is written."""
    services = sqlite_services
    before = count_rows(services)
    with pytest.raises(ValueError, match="must not carry secrets"), services.transaction() as s:
        audit.record(s, "test.leak", details={"username": "alice", key: "hunter2"})
    assert count_rows(services) == before


@pytest.mark.parametrize(
    "details",
    [
        {"access_token": "eyJ..."},
        {"id_token": "eyJ..."},
        {"new_password": "hunter2"},
        {"code_verifier": "abc"},
        {"client_assertion": "eyJ..."},
        {"form": {"password": "hunter2"}},
    ],
    ids=["access_token", "id_token", "new_password", "code_verifier", "client_assertion", "nested"],
)
def test_details_with_other_secret_like_keys_are_refused(
    sqlite_services: Services, details: dict[str, Any]
) -> None:
    """R-AUD-4: secret-like keys beyond the exact list (and nested ones) are refused too."""
    with (
        pytest.raises(ValueError, match="must not carry secrets"),
        sqlite_services.transaction() as s,
    ):
        audit.record(s, "test.leak", details=details)


# -- transactions and concurrency -------------------------------------------------------------
def test_rolled_back_event_leaves_no_trace(chain: tuple[Services, list[int]]) -> None:
    """R-AUD-3: an event written in a transaction that rolls back vanishes with it, and the
    chain stays valid and contiguous."""
    services, seqs = chain
    before = count_rows(services)
    rolled_back(services, lambda s: audit.record(s, "test.rolled_back", actor="alice"))
    with services.transaction() as s:
        assert s.scalar(select(func.count()).where(AuditEvent.event == "test.rolled_back")) == 0
    assert count_rows(services) == before
    [later] = write_events(services, 1)
    seal_all(services)
    assert row_by_id(services, later)["seq"] == seqs[-1] + 1
    assert verify(services) == audit.VerifyResult(True, seqs[-1] + 1)


def test_rolled_back_seal_changes_nothing(chain: tuple[Services, list[int]]) -> None:
    services, seqs = chain
    write_events(services, 2)
    rolled_back(services, audit.seal)
    result = verify(services)
    assert (result.ok, result.checked, result.unsealed) == (True, seqs[-1], 2)


def _concurrently(threads: int, work: Any) -> list[BaseException]:
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            work(n)
        except BaseException as exc:  # noqa: BLE001 — reported by the test
            errors.append(exc)

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    return errors


def test_concurrent_appenders_and_sealers_make_one_chain(services: Services) -> None:
    """R-AUD-3: writers and sealers at once (own sessions) give one contiguous, valid chain."""
    start = count_rows(services)
    seal_all(services)

    def work(n: int) -> None:
        for i in range(8):
            with services.transaction() as s:
                audit.record(s, "test.concurrent", actor=f"thread-{n}", details={"i": i})
            if i % 3 == n % 3:
                with services.transaction() as s:
                    audit.seal(s)

    assert _concurrently(4, work) == []
    seal_all(services)
    with services.transaction() as s:
        seqs = list(s.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)))
        actors = list(s.scalars(select(AuditEvent.actor).where(AuditEvent.event == "test.concurrent")))
    assert seqs == list(range(1, start + 33))
    assert sorted(actors) == sorted(f"thread-{n}" for n in range(4) for _ in range(8))
    assert verify(services) == audit.VerifyResult(True, start + 32)


def test_concurrent_first_seals_on_an_empty_log(services: Services, request: pytest.FixtureRequest) -> None:
    """R-AUD-3: the very first seals, run concurrently, also form one chain (no sealer fails
    creating the head row)."""
    fresh_install(services)
    write_events(services, 6)

    def work(n: int) -> None:
        with services.transaction() as s:
            audit.record(s, "test.concurrent", actor=f"thread-{n}")
            audit.seal(s)

    assert _concurrently(4, work) == []
    seal_all(services)
    assert verify(services) == audit.VerifyResult(True, 10)


# -- critical events notify the security officer ----------------------------------------------
def test_critical_event_enqueues_notification(services: Services) -> None:
    """R-AUD-2: a critical event queues iam.notify_critical in the same transaction."""
    with services.transaction() as s:
        audit.record(s, "test.significant", severity=Severity.SIGNIFICANT)
        crit = audit.record(s, "test.critical", severity=Severity.CRITICAL, actor="mallory")
    with services.transaction() as s:
        queued = list(s.scalars(select(Job).where(Job.kind == "iam.notify_critical")))
    assert [j.payload for j in queued] == [{"event_id": crit}]
    assert queued[0].status == JobStatus.PENDING


def test_critical_event_rolled_back_queues_nothing(services: Services) -> None:
    """R-AUD-2: no notification for a critical event whose transaction rolled back."""
    rolled_back(services, lambda s: audit.record(s, "test.critical", severity=Severity.CRITICAL))
    with services.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


def _with_mail(monkeypatch: pytest.MonkeyPatch, services: Services, port: int) -> None:
    settings = services.settings.model_copy(
        update={
            "mail": MailSettings(host="127.0.0.1", port=port, sender="iam@idp.test"),
            "audit": AuditSettings(security_officer_email="officer@example.test"),
        }
    )
    monkeypatch.setattr(services, "settings", settings)


def test_notify_job_mails_the_security_officer(
    services: Services, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R-AUD-2: the worker mails the security officer about a critical event, once."""
    import iam.core_jobs  # noqa: F401 — registers iam.notify_critical

    _with_mail(monkeypatch, services, smtp_sink.server_address[1])
    with services.transaction() as s:
        event_id = audit.record(
            s,
            "admin.break_glass",
            severity=Severity.CRITICAL,
            actor="mallory",
            subject="root",
            ip="203.0.113.9",
        )
    assert jobs.run_due(services) == 1
    assert len(smtp_sink.messages) == 1
    sent = smtp_sink.messages[0]
    assert sent["to"] == ["officer@example.test"]
    assert sent["from"] == "iam@idp.test"
    msg = sent["msg"]
    assert msg["Subject"] == "[IAM critical] admin.break_glass"
    assert msg["To"] == "officer@example.test"
    body = msg.get_content()
    for expected in ("admin.break_glass", "mallory", "root", "203.0.113.9", f"Audit event id: {event_id}"):
        assert expected in body
    with services.transaction() as s:
        job = s.scalars(select(Job).where(Job.kind == "iam.notify_critical")).one()
    assert job.status == JobStatus.DONE
    assert jobs.run_due(services) == 0
    assert len(smtp_sink.messages) == 1


def test_notify_job_retries_when_mail_relay_is_down(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R-AUD-2: with the relay unreachable the notification stays queued for a retry."""
    import socket

    import iam.core_jobs  # noqa: F401

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _with_mail(monkeypatch, services, port)
    with services.transaction() as s:
        audit.record(s, "admin.break_glass", severity=Severity.CRITICAL)
    assert jobs.run_due(services) == 1
    with services.transaction() as s:
        job = s.scalars(select(Job).where(Job.kind == "iam.notify_critical")).one()
    assert job.status == JobStatus.PENDING
    assert job.attempts == 1
    assert job.run_at > clock.now()
    assert "Connection" in (job.last_error or "") or "refused" in (job.last_error or "")


# -- the external anchor (issue 11 item 1) ----------------------------------------------------
def _anchor_lines(services: Services) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in services.audit_anchor.path.read_text().splitlines()]


def _head_row(services: Services) -> dict[str, Any]:
    with services.engine.connect() as conn:
        return dict(conn.execute(select(HEAD)).mappings().one())


def test_every_commit_and_seal_is_anchored_outside_the_database(services: Services) -> None:
    """R-AUD-3: committed rows (before their seal) and every sealed head go to the anchor file,
    each line with a MAC; rolled-back work (also a rolled-back savepoint) leaves no line."""
    ids = write_events(services, 2)
    rolled_back(services, lambda s: audit.record(s, "test.rolled_back"))
    with services.transaction() as s:
        savepoint = s.begin_nested()
        audit.record(s, "test.savepoint_undone")
        savepoint.rollback()
        kept = audit.record(s, "test.kept")
    total = seal_all(services)
    lines = _anchor_lines(services)
    rows = [r for line in lines if line["kind"] == "rows" for r in line["rows"]]
    assert [r[0] for r in rows][-3:] == [*ids, kept]
    assert {r[2] for r in rows}.isdisjoint({"test.rolled_back", "test.savepoint_undone"})
    assert [line["kind"] for line in lines if line["kind"] != "rows"] == ["genesis", "seal"]
    head = _head_row(services)
    assert (lines[-1]["seq"], lines[-1]["hash"], lines[-1]["head_mac"]) == (
        head["seq"],
        head["hash"],
        head["mac"],
    )
    assert lines[-1]["seq"] == total and lines[-1]["at"].endswith("Z")
    assert all(len(line["mac"]) == 64 for line in lines)
    assert verify(services).ok


def test_emptied_log_with_head_deleted_is_detected(chain: tuple[Services, list[int]]) -> None:
    """R-AUD-3: deleting every row AND the head no longer reads as a fresh log: verify names
    the missing rows from the anchor, and the worker refuses to start a new chain."""
    services, seqs = chain
    last = seqs[-1]
    raw(services, delete(EVENTS))
    raw(services, delete(HEAD))
    result = verify(services)
    assert (result.ok, result.checked, result.seq) == (False, 0, 1)
    anchor = str(services.audit_anchor.path)
    assert result.problem is not None
    assert result.problem.startswith(
        f"the chain head was deleted (the anchor {anchor} records the chain's start"
    )
    assert result.problem.endswith(f"; sealed rows 1..{last} are missing")
    with pytest.raises(audit.TamperedHead, match="deleted"):
        seal_all(services)
    with services.engine.connect() as conn:  # no fresh chain was started
        assert conn.execute(select(func.count()).select_from(HEAD)).scalar_one() == 0


def test_head_rolled_back_to_an_older_one_is_detected(services: Services) -> None:
    """R-AUD-3: deleting the newest rows and putting back an older head (whose MAC is valid) is
    seen against the anchor, which holds the newer seq; the worker refuses to seal onto it."""
    write_events(services, 3)
    seal_all(services)
    old_head = _head_row(services)
    write_events(services, 4)
    newest = seal_all(services) + old_head["seq"]
    raw(services, delete(EVENTS).where(EVENTS.c.seq > old_head["seq"]))
    raw(services, update(HEAD).values(seq=old_head["seq"], hash=old_head["hash"], mac=old_head["mac"]))
    with services.transaction() as s:  # consistent in itself: the old check passed this
        assert audit._head_mac(audit._key(s), old_head["seq"], old_head["hash"]) == old_head["mac"]
    result = verify(services)
    assert (result.ok, result.seq, result.checked) == (False, old_head["seq"] + 1, old_head["seq"])
    assert result.problem == (
        f"sealed rows {old_head['seq'] + 1}..{newest} are missing: the anchor "
        f"{services.audit_anchor.path} records seq {newest} (sealed {_anchor_lines(services)[-1]['at']}) "
        f"but the database ends at {old_head['seq']} (its head was rolled back)"
    )
    with pytest.raises(audit.TamperedHead, match=f"rewound to {old_head['seq']}"):
        seal_all(services)


def test_deleted_unsealed_rows_are_detected(services: Services) -> None:
    """R-AUD-3: rows deleted before the worker sealed them are named from the anchor."""
    seal_all(services)
    ids = write_events(services, 4, event="test.unsealed")
    raw(services, delete(EVENTS).where(EVENTS.c.id.in_([ids[1], ids[3]])))
    result = verify(services)
    assert (result.ok, result.missing) == (False, (ids[1], ids[3]))
    anchor = services.audit_anchor.path
    assert result.problem is not None
    assert result.problem.startswith(
        f"2 committed row(s) the anchor {anchor} lists are missing from the database: "
        f"id {ids[1]} (test.unsealed, committed "
    )
    assert f"id {ids[3]} (test.unsealed, committed " in result.problem
    seal_all(services)  # sealing what is left does not launder it
    assert verify(services).missing == (ids[1], ids[3])


def test_edited_anchor_line_is_reported(chain: tuple[Services, list[int]]) -> None:
    """An anchor line changed by someone without the key (e.g. to lower the seq) is refused."""
    import json

    services, _ = chain
    lines = _anchor_lines(services)
    lines[-1]["seq"] = 1
    services.audit_anchor.path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = verify(services)
    assert not result.ok
    assert result.problem == (
        f"line {len(lines)} of the anchor {services.audit_anchor.path} is not a valid anchor (edited or forged)"
    )


def test_verify_against_a_copy_of_the_anchor(chain: tuple[Services, list[int]], tmp_path: Any) -> None:
    """The anchor kept off the host (a copy) is what verify compares with when given."""
    services, seqs = chain
    copy = tmp_path / "anchor-copy.jsonl"
    copy.write_bytes(services.audit_anchor.path.read_bytes())
    services.audit_anchor.path.unlink()  # the local file is gone (an attacker on the host)
    raw(services, delete(EVENTS))
    raw(services, delete(HEAD))
    with services.transaction() as s:
        result = audit.verify(s, anchor_file=copy)
    assert not result.ok and f"sealed rows 1..{seqs[-1]} are missing" in (result.problem or "")
    assert result.anchor == str(copy)


def test_anchor_lines_go_to_the_siem_syslog(services: Services, tmp_path: Any) -> None:
    """R-AUD-5: with audit.anchor_syslog set, every anchor line is also sent to syslog (UDP)."""
    import json
    import socket

    from iam.audit_anchor import Anchor

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(5)
        key = audit.audit_key(services.secret_key)
        anchor = Anchor(tmp_path / "a.jsonl", key, syslog=f"127.0.0.1:{sink.getsockname()[1]}")
        anchor.write([{"kind": "seal", "seq": 7, "hash": "ab" * 32, "head_mac": "cd" * 32}])
        message = sink.recv(65536).decode()
    assert message.startswith("<") and "iam-audit-anchor: " in message  # <PRI> of LOG_AUTH
    entry = json.loads(message.split("iam-audit-anchor: ", 1)[1].rstrip("\x00"))
    assert entry["seq"] == 7 and entry["mac"] == anchor.mac(entry)
    assert json.loads((tmp_path / "a.jsonl").read_text()) == entry
