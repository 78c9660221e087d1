"""Fixtures of the second-factor tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def mfa_settings(services) -> Iterator[object]:
    """The services' [mfa] settings, for a test to change; restored afterwards."""
    m = services.settings.mfa
    saved = m.model_copy(deep=True)
    yield m
    for name in type(m).model_fields:
        setattr(m, name, getattr(saved, name))


# the temporary CLI site of tests/iam/test_cli.py (``site`` and the ``template`` it copies)
from tests.iam.test_cli import site, template  # noqa: E402, F401
