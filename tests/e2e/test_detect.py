"""Attack scripts against a running provider (``iam serve`` with two workers plus ``iam
worker``): password spraying and brute force over HTTP, as a browser posts the sign-in form,
raise exactly one alert each — a critical audit event and a mail to the security officer and
the heads of service in the SMTP sink — and below the thresholds, none. Nothing is driven by
hand: the worker seals, detects and mails; the test waits for those conditions and prints how
long the alert took after the attempt that crossed the threshold."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from detect.models import Alert, Cursor
from iam.models.audit import AuditEvent
from tests.detect.helpers import LOGIN_RULES
from tests.e2e.conftest import CI, DEMO_PASSWORD, LiveProvider, _provider_env, free_port
from tests.smtp import SmtpSink

try:
    from playwright.sync_api import Page, expect
except ImportError:
    if CI:
        raise
    pytest.skip("the playwright Python package is not installed", allow_module_level=True)

pytestmark = [pytest.mark.e2e]

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
RULES = (
    """
[recipients]
security_officer = ["officer@example.test"]
heads_of_service = ["head-it@example.test", "head-finance@example.test"]
"""
    + LOGIN_RULES
)
RECIPIENTS = {"officer@example.test", "head-it@example.test", "head-finance@example.test"}


@pytest.fixture
def provider(tmp_path_factory: pytest.TempPathFactory, smtp_sink: SmtpSink) -> Iterator[LiveProvider]:
    """A provider of its own: its mail goes to the sink, its rules are the test's."""
    var_dir = tmp_path_factory.mktemp("detect-provider")
    rules = Path(var_dir) / "alerts.toml"
    rules.write_text(RULES)
    port = free_port()
    env = _provider_env(var_dir, port, None)
    env.update(
        {
            "IAM_MAIL__HOST": "127.0.0.1",
            "IAM_MAIL__PORT": str(smtp_sink.server_address[1]),
            "IAM_DETECT__RULES_FILE": str(rules),
        }
    )
    live = LiveProvider(kind="local", port=port, var_dir=var_dir, env=env)
    live.start()
    try:
        yield live
        assert "Traceback" not in live.server_log.read_text() + live.worker_log.read_text(), (
            live.diagnostics()
        )
    finally:
        live.stop()


def wait_for(
    what: str, condition: Callable[[], bool], provider: LiveProvider, timeout: float = 60.0
) -> float:
    """Wait until ``condition`` holds (the worker's work); return how long it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what}: not within {timeout:.0f} s\n{provider.diagnostics()}")
        time.sleep(0.05)
    return time.monotonic() - start


def attempt(provider: LiveProvider, username: str) -> None:
    """One wrong password, as Chromium posts the form (page with its CSRF token, then POST)."""
    with httpx.Client(base_url=provider.issuer, timeout=30) as http:
        page = http.get("/login")
        token = CSRF.search(page.text)
        assert token, page.text[:300]
        resp = http.post(
            "/login",
            data={"csrf_token": token.group(1), "username": username, "password": "Wrong-Passw0rd-1"},
        )
        assert resp.status_code in (200, 400, 401, 403, 429), resp.status_code


def test_spraying_and_brute_force_raise_one_alert_each_mailed(
    provider: LiveProvider, smtp_sink: SmtpSink, page: Page
) -> None:
    svc = provider.services()

    def last_event_seq_read() -> bool:
        with svc.reader() as s:
            newest = s.scalar(select(func.max(AuditEvent.id)))
            seq = s.scalar(select(AuditEvent.seq).where(AuditEvent.id == newest))
            read = s.scalar(select(Cursor.position).where(Cursor.name == "alerts")) or 0
        return seq is not None and read >= seq

    def alerts() -> list[tuple[str, str]]:
        with svc.reader() as s:
            return [(a.rule, a.key) for a in s.scalars(select(Alert).order_by(Alert.id))]

    # below the thresholds: 6 accounts once each and one 5 times (7 accounts from the network)
    for i in range(6):
        attempt(provider, f"nobody{i}")
    for _ in range(5):
        attempt(provider, "bob")
    wait_for("the worker read every event", last_event_seq_read, provider)
    assert alerts() == []

    # spraying: more accounts, one try each, from the same network
    for i in range(6, 8):  # nobody7 is the 8th account: the threshold
        attempt(provider, f"nobody{i}")
    took = wait_for("the spraying alert", lambda: len(alerts()) == 1, provider)
    print(f"spraying alert {took:.2f} s after the attempt that crossed the threshold")
    # brute force on one account
    for _ in range(6):
        attempt(provider, "alice")
    took = wait_for("the brute-force alert", lambda: len(alerts()) == 2, provider)
    print(f"brute-force alert {took:.2f} s after the attempt that crossed the threshold")
    for i in range(8, 16):  # the spraying goes on: counted on the same incident
        attempt(provider, f"nobody{i}")
    wait_for("the worker read every event", last_event_seq_read, provider)
    assert alerts() == [("password_spraying", "127.0.0.0/24"), ("brute_force", "alice")]

    def mailed() -> bool:
        return len([m for m in smtp_sink.messages if "[IAM alert]" in str(m["msg"]["Subject"])]) >= 6

    wait_for("the alert mails", mailed, provider)
    mails = [m for m in smtp_sink.messages if "[IAM alert]" in str(m["msg"]["Subject"])]
    assert len(mails) == 6  # one per alert and recipient, nothing more
    for title in ("Password spraying", "Brute force on one account"):
        to = {r for m in mails if title in str(m["msg"]["Subject"]) for r in m["to"]}
        assert to == RECIPIENTS, title
    with svc.reader() as s:
        raised = s.scalars(select(AuditEvent).where(AuditEvent.event == "alert.raised")).all()
    assert sorted(str(e.details["rule"]) for e in raised) == ["brute_force", "password_spraying"]
    assert all(e.severity == "critical" for e in raised)

    # the security officer (the demo's admin) closes the spraying alert in Chromium
    page.goto(f"{provider.issuer}/login")
    page.get_by_label("Username", exact=True).fill("admin")
    page.get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/login$"))
    page.goto(f"{provider.issuer}/security/alerts")
    expect(page.locator("#alerts tbody tr")).to_have_count(2)
    page.locator('#alerts tr[data-rule="password_spraying"] a').click()
    page.get_by_role("button", name="Close").click()
    expect(page.locator("#form-error")).to_contain_text("needs a comment")
    page.get_by_label("Comment (needed to close)").fill("Blocked 127.0.0.0/24 at the firewall")
    page.get_by_role("button", name="Close").click()
    expect(page.locator("#alert-state")).to_have_text("closed")
    with svc.reader() as s:
        closed = s.scalars(select(Alert).where(Alert.rule == "password_spraying")).one()
    assert (closed.state, closed.comment) == ("closed", "Blocked 127.0.0.0/24 at the firewall")
