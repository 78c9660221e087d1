"""The console's people search on the real Samba AD DC: by given and family name, UPN and
employee number (``Directory.search_users``), and the console's several-word names."""

from __future__ import annotations

import secrets

import pytest

from iam.directory.ad import ActiveDirectory
from iam.directory.base import NewUser

pytestmark = [pytest.mark.samba, pytest.mark.usefixtures("samba_turn")]


def test_search_by_names_and_employee_number(ad_directory: ActiveDirectory) -> None:
    from iam.admin.service.people import matches

    tag = secrets.token_hex(3)
    user = ad_directory.create_user(
        NewUser(
            username=f"srch{tag}",
            given_name=f"Ljiljana{tag}",
            family_name=f"Đokić{tag}",
            employee_number=f"E{tag}9",
            email=f"lj{tag}@example.test",
        )
    )
    for query in (f"Ljiljana{tag}", f"đokić{tag}".upper(), f"E{tag}9", f"lj{tag}@example", f"srch{tag}"):
        found = [u.id for u in ad_directory.search_users(query=query, page_size=10)]
        assert found == [user.id], query
    assert list(ad_directory.search_users(query=f"nobody{tag}", page_size=10)) == []
    got = ad_directory.get_user(user.id)
    assert got is not None and matches(got, [f"ljiljana{tag}", f"Đokić{tag}"])
    assert not matches(got, [f"ljiljana{tag}", "someone-else"])
