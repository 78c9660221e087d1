"""The plug-in points the smart-card package uses, exercised with a stand-in card method:
``complete_authentication`` (first factor and step-up), the method registry and the device
list of "my security devices"."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Blueprint, request

from iam.web import services as web_services
from sso.mfa import hooks
from sso.views.signin import complete_authentication
from tests.sso.helpers import PASSWORD, authorize_url, exchange, follow_to_code, login, make_client, make_user
from tests.sso.mfa.test_flow import _claims, _id_token

card = Blueprint("fakecard", __name__)


@card.route("/fake-card", methods=["GET", "POST"])
def sign_in() -> object:
    """Stands in for the certificate check: the card 'belongs' to the user named in ?user=."""
    user = web_services().directory.find_user(username=request.args["user"])
    assert user is not None
    return complete_authentication(user, amr=("sc", "hwk"), method="card")


@pytest.fixture
def with_card(app) -> Iterator[None]:
    app.register_blueprint(card)
    hooks.register_method(
        hooks.SignInMethod(
            key="card", label="Smart card", endpoint="fakecard.sign_in", amr=("sc", "hwk"),
            available=lambda s, sub: True, order=10,
        )
    )  # fmt: skip

    def source(s: object, sub: str) -> list[hooks.Device]:
        return [hooks.Device(kind="card", label="Qualified ID card", detail="CN=Test CA, serial 0A1B")]

    hooks.register_device_source(source)
    yield
    hooks._methods.pop("card", None)
    hooks._device_sources.remove(source)


def test_card_steps_up_a_password_session_to_smartcard(services, client, with_card, mfa_settings):
    mfa_settings.require_enrolled = False  # else the bound card is asked for right after the password
    make_user(services)
    cid, secret = make_client(services)
    url, flow = authorize_url(cid)
    client.get(url)
    first = _id_token(client, follow_to_code(client, login(client, "alice", PASSWORD)), flow, secret)
    url, flow = authorize_url(cid, acr_values="smartcard")
    assert client.get(url).headers["Location"].endswith("/mfa/")
    assert client.get("/mfa/").headers["Location"].endswith("/fake-card")
    choose = client.get("/mfa/?all=1").get_data(as_text=True)  # the page lists it
    assert "Smart card" in choose or "fake-card" in choose
    params = follow_to_code(client, client.get("/fake-card?user=alice"))
    claims = _id_token(client, params, flow, secret)
    assert claims["acr"] == "smartcard"
    assert claims["amr"] == ["pwd", "sc", "hwk", "mfa"]
    assert claims["sid"] == first["sid"]


def test_card_as_the_only_factor_starts_a_session(services, client, with_card):
    make_user(services)
    cid, secret = make_client(services)
    url, flow = authorize_url(cid)
    assert client.get(url).headers["Location"].endswith("/login")
    params = follow_to_code(client, client.get("/fake-card?user=alice"))
    resp = exchange(client, params["code"], flow, secret)
    claims = _claims(client, resp.get_json()["id_token"])
    assert (claims["acr"], claims["amr"]) == ("smartcard", ["sc", "hwk"])


def test_devices_page_lists_other_packages_devices(services, client, with_card):
    make_user(services)
    cid, _ = make_client(services)
    client.get(authorize_url(cid)[0])
    # a bound card counts as a second factor: after the password the card is asked for
    resp = login(client, "alice", PASSWORD)
    assert resp.headers["Location"].endswith("/mfa/")
    follow_to_code(client, client.get("/fake-card?user=alice"))
    page = client.get("/mfa/devices").get_data(as_text=True)
    assert "Qualified ID card" in page and "CN=Test CA, serial 0A1B" in page
