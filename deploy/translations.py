"""Catalogue chores for deploy/translations.sh (see README "Languages").

python deploy/translations.py english translations/en/LC_MESSAGES/messages.po
    the English catalogue says what the source says (msgstr = msgid), so it is complete too
python deploy/translations.py missing translations
    every untranslated or fuzzy entry, per language; exit status 1 when there is one
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po


def load(path: Path) -> Catalog:
    with path.open("rb") as f:
        return read_po(f)


def save(catalog: Catalog, path: Path) -> None:
    with path.open("wb") as f:
        write_po(f, catalog, width=0, ignore_obsolete=True)


def english(path: Path) -> None:
    catalog = load(path)
    for message in catalog:
        if not message.id:
            continue
        message.string = tuple(message.id) if message.pluralizable else message.id
        message.flags.discard("fuzzy")
    save(catalog, path)


def untranslated(catalog: Catalog) -> list[tuple[str, str]]:
    """(reason, msgid) of each entry that is not usable as it is."""
    out: list[tuple[str, str]] = []
    for message in catalog:
        if not message.id:
            continue
        msgid = message.id[0] if message.pluralizable else message.id
        strings = message.string if message.pluralizable else (message.string,)
        if message.fuzzy:
            out.append(("fuzzy", str(msgid)))
        elif not all(strings):
            out.append(("untranslated", str(msgid)))
    return out


def missing(root: Path) -> int:
    found = 0
    for po in sorted(root.glob("*/LC_MESSAGES/messages.po")):
        entries = untranslated(load(po))
        found += len(entries)
        print(f"{po.parent.parent.name}: {len(entries)} to translate")
        for reason, msgid in entries:
            print(f"  [{reason}] {msgid[:100]!r}")
    return 1 if found else 0


if __name__ == "__main__":
    command, arg = sys.argv[1], Path(sys.argv[2])
    if command == "english":
        english(arg)
    elif command == "missing":
        sys.exit(missing(arg))
    else:
        sys.exit(f"unknown command {command}")
