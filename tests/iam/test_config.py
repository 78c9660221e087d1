"""Settings: embedded defaults, environment and TOML sources, production checks, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from iam.config import Settings, load_settings
from iam.errors import ConfigError
from iam.services import Services

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s" * 40
ENC_KEY = "Ck1hYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM="


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No IAM_* variables from the caller's environment and no iam.toml in the working dir."""
    for name in list(os.environ):
        if name.startswith("IAM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def production_env(monkeypatch: pytest.MonkeyPatch, **extra: str) -> None:
    monkeypatch.setenv("IAM_ISSUER", "https://sso.example.test")
    monkeypatch.setenv("IAM_SECRET_KEY", SECRET)
    monkeypatch.setenv("IAM_ENCRYPTION_KEY", ENC_KEY)
    for k, v in extra.items():
        monkeypatch.setenv(k, v)


# -- sources ----------------------------------------------------------------------------------
def test_defaults_are_the_embedded_setup() -> None:
    """Nothing configured: SQLite under var/, the built-in directory, not dev mode."""
    s = load_settings()
    assert s.database.url == "sqlite:///var/iam.db"
    assert s.directory.kind == "local"
    assert s.var_dir == Path("var")
    assert s.dev_mode is False
    assert s.secret_key.get_secret_value() == ""
    assert s.server.metrics_networks == ["127.0.0.0/8", "::1/128"]
    assert s.server.trusted_proxies == []


def test_environment_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    """IAM_<SECTION>__<KEY> sets nested settings; IAM_<KEY> top-level ones."""
    monkeypatch.setenv("IAM_DATABASE__URL", "postgresql+psycopg://iam@db/iam")
    monkeypatch.setenv("IAM_DATABASE__POOL_SIZE", "9")
    monkeypatch.setenv("IAM_DIRECTORY__KIND", "ad")
    monkeypatch.setenv("IAM_DIRECTORY__BASE_DN", "DC=example,DC=test")
    monkeypatch.setenv("IAM_DEV_MODE", "true")
    monkeypatch.setenv("IAM_SERVER__TRUSTED_PROXIES", '["10.0.0.0/8"]')
    s = load_settings()
    assert s.database.url == "postgresql+psycopg://iam@db/iam"
    assert s.database.pool_size == 9
    assert (s.directory.kind, s.directory.base_dn) == ("ad", "DC=example,DC=test")
    assert s.dev_mode is True
    assert s.server.trusted_proxies == ["10.0.0.0/8"]


def write_toml(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def test_toml_file_named_by_iam_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conf = write_toml(
        tmp_path / "elsewhere.toml",
        'organisation = "Town Hall"\n[database]\nurl = "sqlite:///from-toml.db"\npool_size = 7\n'
        "[worker]\nmax_attempts = 3\n",
    )
    monkeypatch.setenv("IAM_CONFIG", str(conf))
    s = load_settings()
    assert s.organisation == "Town Hall"
    assert (s.database.url, s.database.pool_size) == ("sqlite:///from-toml.db", 7)
    assert s.worker.max_attempts == 3


def test_iam_toml_in_working_directory_is_read(clean_env: Path) -> None:
    write_toml(clean_env / "iam.toml", 'organisation = "Local File"\n')
    assert load_settings().organisation == "Local File"


def test_environment_wins_over_toml_key_by_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Later sources win per key: env overrides one nested key, the file's others remain."""
    conf = write_toml(
        tmp_path / "iam.toml",
        'organisation = "From File"\n[database]\nurl = "sqlite:///file.db"\npool_size = 7\n',
    )
    monkeypatch.setenv("IAM_CONFIG", str(conf))
    monkeypatch.setenv("IAM_ORGANISATION", "From Env")
    monkeypatch.setenv("IAM_DATABASE__URL", "sqlite:///env.db")
    s = load_settings()
    assert s.organisation == "From Env"
    assert s.database.url == "sqlite:///env.db"
    assert s.database.pool_size == 7
    # explicit arguments (tests, code) win over both
    assert load_settings(organisation="From Code").organisation == "From Code"


def test_missing_iam_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    monkeypatch.setenv("IAM_CONFIG", str(missing))
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_settings()
    assert str(missing) in str(info.value)


def test_shipped_example_file_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy/iam.toml.example loads and passes the production checks once secrets are set."""
    monkeypatch.setenv("IAM_CONFIG", str(ROOT / "deploy" / "iam.toml.example"))
    production_env(monkeypatch, IAM_DIRECTORY__BIND_PASSWORD="bind-pw")
    monkeypatch.delenv("IAM_ISSUER")
    s = load_settings()
    assert s.directory.kind == "ad"
    assert s.issuer.startswith("https://")
    s.check_production()


# -- production checks ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("unset", "named"),
    [("IAM_SECRET_KEY", "IAM_SECRET_KEY"), ("IAM_ENCRYPTION_KEY", "IAM_ENCRYPTION_KEY")],
)
def test_missing_secret_outside_dev_mode(monkeypatch: pytest.MonkeyPatch, unset: str, named: str) -> None:
    production_env(monkeypatch)
    monkeypatch.delenv(unset)
    settings = load_settings()
    with pytest.raises(ConfigError) as info:
        settings.check_production()
    message = str(info.value)
    assert named in message
    other = {"IAM_SECRET_KEY", "IAM_ENCRYPTION_KEY"} - {named}
    assert not any(o in message for o in other)
    with pytest.raises(ConfigError, match=named):
        Services(settings)


def test_missing_ad_bind_password_outside_dev_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    production_env(monkeypatch, IAM_DIRECTORY__KIND="ad", IAM_DIRECTORY__BASE_DN="DC=example,DC=test")
    with pytest.raises(ConfigError, match="IAM_DIRECTORY__BIND_PASSWORD"):
        load_settings().check_production()
    monkeypatch.setenv("IAM_DIRECTORY__BIND_PASSWORD", "pw")
    load_settings().check_production()


def test_http_issuer_outside_dev_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    production_env(monkeypatch, IAM_ISSUER="http://sso.example.test")
    with pytest.raises(ConfigError, match="IAM_ISSUER"):
        load_settings().check_production()


def test_short_secret_key_outside_dev_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    production_env(monkeypatch, IAM_SECRET_KEY="too-short")
    with pytest.raises(ConfigError, match="IAM_SECRET_KEY"):
        load_settings().check_production()


def test_complete_production_settings_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    production_env(monkeypatch)
    load_settings().check_production()


def test_dev_mode_needs_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IAM_DEV_MODE", "true")
    monkeypatch.setenv("IAM_ISSUER", "http://localhost:5000")
    load_settings().check_production()


# -- invalid values ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "value", "key"),
    [
        ("IAM_DATABASE__POOL_SIZE", "many", "database.pool_size"),
        ("IAM_ISSUER", "ftp://sso.example.test", "issuer"),
        ("IAM_DIRECTORY__KIND", "openldap", "directory.kind"),
        ("IAM_TOKENS__SIGNING_ALG", "HS256", "tokens.signing_alg"),
        ("IAM_SERVER__TRUSTED_PROXIES", '["10.0.0.0/33"]', "server.trusted_proxies"),
        ("IAM_SERVER__METRICS_NETWORKS", '["not-a-network"]', "server.metrics_networks"),
    ],
)
def test_invalid_setting_is_one_sentence_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, key: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(f"Invalid setting {key}")
    assert "\n" not in message
    assert message.endswith(".")


def test_unknown_top_level_key_in_toml_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conf = write_toml(tmp_path / "iam.toml", 'organization = "US spelling"\n')
    monkeypatch.setenv("IAM_CONFIG", str(conf))
    with pytest.raises(ConfigError, match=r"^Invalid setting organization: .*\.$"):
        load_settings()


def test_unknown_key_in_toml_section_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A typo such as ``[directory] start_tsl = false`` must not be silently ignored."""
    conf = write_toml(tmp_path / "iam.toml", "[directory]\nstart_tsl = false\n")
    monkeypatch.setenv("IAM_CONFIG", str(conf))
    with pytest.raises(ConfigError, match=r"Invalid setting directory\.start_tsl"):
        load_settings()


def test_issuer_trailing_slash_is_dropped() -> None:
    assert load_settings(issuer="https://sso.example.test/").issuer == "https://sso.example.test"


# -- directory rules --------------------------------------------------------------------------
def test_ad_without_base_dn_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IAM_DIRECTORY__KIND", "ad")
    with pytest.raises(ConfigError, match=r"directory\.base_dn is required"):
        load_settings()


@pytest.mark.parametrize(
    ("url", "start_tls", "allow_plain", "ok"),
    [
        ("ldap://dc.example.test", False, False, False),
        ("ldap://dc.example.test", True, False, True),
        ("ldap://dc.example.test", False, True, True),
        ("ldaps://dc.example.test", False, False, True),
    ],
)
def test_plain_ldap_needs_start_tls_or_allow_plain(
    url: str, start_tls: bool, allow_plain: bool, ok: bool
) -> None:
    directory = {
        "kind": "ad",
        "base_dn": "DC=example,DC=test",
        "url": url,
        "start_tls": start_tls,
        "allow_plain": allow_plain,
    }
    if ok:
        assert load_settings(directory=directory).directory.url == url
    else:
        with pytest.raises(ConfigError, match="plain ldap:// without StartTLS"):
            load_settings(directory=directory)


def test_settings_is_the_pydantic_model() -> None:
    """load_settings passes arguments through unchanged (used by tests and the CLI)."""
    s = load_settings(dev_mode=True, database={"url": "sqlite:///x.db"})
    assert isinstance(s, Settings)
    assert (s.dev_mode, s.database.url, s.database.pool_size) == (True, "sqlite:///x.db", 5)
