"""Several nodes on one PostgreSQL (issue 17): a change committed by another process — the CLI
on another machine, another node — reaches this node's caches through change notifications
(``iam.cluster``), not only after the caches' time-to-live; lockout stays exact across nodes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from iam import cluster, lockout
from iam.app import create_app
from iam.services import Services
from sso import keys as key_service
from sso.server import ClientCache
from tests.conftest import make_settings
from tests.sso.helpers import PASSWORD, login, make_user
from tests.sso.test_clients_and_tokens import cc, cc_client

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg(services: Services) -> Services:
    if services.engine.dialect.name != "postgresql":
        pytest.skip("several nodes share PostgreSQL; SQLite is one node")
    return services


@pytest.fixture
def heard() -> Iterator[dict[str, threading.Event]]:
    """Events set when this process's listener delivers a notification of a topic."""
    events: dict[str, threading.Event] = {t: threading.Event() for t in ("client", "keys", "trust")}
    receivers = {t: (lambda key, t=t: events[t].set()) for t in events}
    for t, r in receivers.items():
        cluster.on(t, r)
    yield events
    for t, r in receivers.items():
        cluster.off(t, r)


def other_node(services: Services, *args: str) -> Any:
    """Run ``iam ARGS`` in another process on the same database (another machine's CLI)."""
    s = services.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("IAM_")}
    env.update(
        {
            "IAM_DEV_MODE": "true",
            "IAM_VAR_DIR": str(s.var_dir),
            "IAM_DATABASE__URL": services.engine.url.render_as_string(hide_password=False),
            "IAM_ISSUER": s.issuer,
            "IAM_SECRET_KEY": s.secret_key.get_secret_value(),
            "IAM_ENCRYPTION_KEY": s.encryption_key.get_secret_value(),
            "IAM_DIRECTORY__KIND": "local",
        }
    )
    out = subprocess.run(
        [str(Path(sys.executable).parent / "iam"), *args, "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)


def listening(services: Services, heard: dict[str, threading.Event]) -> None:
    listener = cluster.listen(services)
    assert listener is not None and listener.connected.wait(10)
    for e in heard.values():
        e.clear()


def test_client_disabled_elsewhere_is_refused_here_at_once(
    pg: Services, client: Any, heard: dict[str, threading.Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache's time-to-live is made an hour: only the notification can explain the refusal."""
    monkeypatch.setattr(ClientCache, "TTL", 3600.0)
    cid, secret = cc_client(pg)
    assert secret is not None
    listening(pg, heard)
    assert cc(client, cid, secret).status_code == 200  # cached on this node now
    other_node(pg, "client", "disable", cid)
    assert heard["client"].wait(10)
    resp = cc(client, cid, secret)
    assert resp.status_code == 401, resp.get_json()
    assert resp.get_json()["error"] == "invalid_client"


def test_key_rotation_elsewhere_switches_this_node_at_once(
    pg: Services, client: Any, heard: dict[str, threading.Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(key_service, "RELOAD_SECONDS", 3600.0)
    ring = key_service.keyring_for(pg)
    listening(pg, heard)
    before = ring.signing_key("ES256").kid
    rotated = other_node(pg, "keys", "rotate")
    assert heard["keys"].wait(10)
    after = ring.signing_key("ES256").kid
    assert after == rotated["signing"]["ES256"] != before


def test_notifications_resume_after_the_connection_is_cut(
    pg: Services, heard: dict[str, threading.Event]
) -> None:
    """The listener reconnects by itself; on reconnecting it tells every cache to drop
    everything (what was sent meanwhile is not replayed)."""
    from sqlalchemy import text

    listener = cluster.listen(pg)
    assert listener is not None and listener.connected.wait(10)
    before = listener.reconnects
    with pg.engine.begin() as conn:
        cut = conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = :name"
            ),
            {"name": cluster.APPLICATION_NAME},
        ).all()
    assert cut
    for e in heard.values():
        e.clear()
    # the reconnect dispatches "drop everything" to every topic
    assert heard["client"].wait(30) and heard["keys"].wait(1) and heard["trust"].wait(1)
    assert listener.reconnects > before and listener.connected.wait(10)
    heard["client"].clear()
    with pg.transaction() as s:
        cluster.notify(s, "client", "x")
    assert heard["client"].wait(10)


def test_lockout_exact_across_two_nodes(pg: Services, tmp_path: Path) -> None:
    """Two nodes (two Services, two apps, one PostgreSQL), 40 parallel wrong passwords split
    over both: exactly ``threshold`` reach the directory, one lock, one critical event."""
    from iam.models.audit import AuditEvent

    make_user(pg, "nodeuser")
    node_b = Services(make_settings(tmp_path, pg.engine.url.render_as_string(hide_password=False)))
    try:
        apps = [create_app(services=pg), create_app(services=node_b)]
        for a in apps:
            a.config.update(TESTING=True)
        reached: list[str] = []
        for svc in (pg, node_b):
            real = svc.directory.authenticate

            def counting(username: str, password: str, real: Any = real) -> Any:
                reached.append(username)
                return real(username, password)

            svc.directory.authenticate = counting  # type: ignore[method-assign]
        n = 40
        barrier = threading.Barrier(n)
        statuses: list[int] = []

        def attempt(i: int) -> None:
            c = apps[i % 2].test_client()
            barrier.wait()
            statuses.append(login(c, "nodeuser", "wrong-password").status_code)

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses == [401] * n
        assert len(reached) == pg.settings.lockout.threshold
        assert login(apps[1].test_client(), "nodeuser", PASSWORD).status_code == 401  # locked
        with pg.transaction() as s:
            locks = s.scalars(select(AuditEvent).where(AuditEvent.event == "login.locked_out")).all()
            assert len(locks) == 1
        account = lockout.account_names(pg).account("nodeuser")
        with pg.transaction() as s:
            assert lockout.unlock(s, account=account, actor="test")
    finally:
        node_b.dispose()


def test_ca_uploaded_elsewhere_is_trusted_here_at_once(
    pg: Services, heard: dict[str, threading.Event], tmp_path: Path
) -> None:
    """``iam ca add`` in another process: this node's trust anchors include it as soon as the
    notification arrives, although its reload interval is an hour."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from sso.x509.certs import thumbprint
    from sso.x509.service.validation import validator_for

    pg.settings.x509.reload_interval = 3600
    try:
        store = validator_for(pg).trust
        before = store.anchors()
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Drill Card CA")])
        now = dt.datetime.now(dt.UTC)
        ca = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        pem = tmp_path / "ca.pem"
        pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        assert thumbprint(ca) not in before.trusted
        listening(pg, heard)
        other_node(pg, "ca", "add", str(pem))
        assert heard["trust"].wait(10)
        assert thumbprint(ca) in store.anchors().trusted
    finally:
        pg.settings.x509.reload_interval = 30
