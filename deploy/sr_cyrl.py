"""Serbian in Cyrillic from Serbian in Latin script, deterministically (see README "Languages").

  python deploy/sr_cyrl.py SR_LATN.po SR_CYRL.po   (deploy/translations.sh update runs it)

Gaj's Latin alphabet maps one to one onto Vuk's Cyrillic (lj → љ, nj → њ, dž → џ). Never
transliterated: placeholders (``%(name)s``, ``%s``, ``{name}``), HTML tags and entities, URLs and
e-mail addresses, code in backticks and command-line options (``--out``), and words that are not
Serbian words — acronyms in capitals (PIM, HR, TOTP,
CSV), words with digits, underscores or dots inside (``ui_locales``, ``iam.toml``). A fuzzy or
empty sr_Latn entry stays empty (untranslated) in sr_Cyrl.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

_DIGRAPHS = {
    "lj": "љ",
    "nj": "њ",
    "dž": "џ",
    "Lj": "Љ",
    "Nj": "Њ",
    "Dž": "Џ",
    "LJ": "Љ",
    "NJ": "Њ",
    "DŽ": "Џ",
}
_LETTERS = dict(
    zip(
        "abvgdđežzijklmnoprstćufhcčšABVGDĐEŽZIJKLMNOPRSTĆUFHCČŠ",
        "абвгдђежзијклмнопрстћуфхцчшАБВГДЂЕЖЗИЈКЛМНОПРСТЋУФХЦЧШ",
        strict=True,
    )
)
#: Words where n+j or d+ž are two letters, not one (prefix + root).
_SPLIT_WORDS = {"konjunkt": "коњункт", "injekc": "инјекц", "nadživ": "наджив", "podžanr": "поджанр"}

#: Acronyms and names that stay in Latin letters in a Cyrillic text.
LATIN_WORDS = {
    "AD",
    "API",
    "CSV",
    "HR",
    "HTTP",
    "IAM",
    "ID",
    "JSON",
    "OAuth",
    "OIDC",
    "PDF",
    "PIM",
    "PIN",
    "PKCE",
    "QR",
    "RFC",
    "SHA",
    "SMS",
    "SSO",
    "TOTP",
    "URL",
    "UTC",
    "Aegis",
    "Authenticator",
    "FreeOTP",
    "Google",
    "Microsoft",
    "Userinfo",
    "Windows",
    "Entra",
    "Keycloak",
    "ms",
    "break-glass",
}

_KEEP = re.compile(
    r"%\([A-Za-z0-9_]+\)[-#0 +]*\d*(?:\.\d+)?[a-zA-Z]"  # %(name)s
    r"|%[-#0 +]*\d*(?:\.\d+)?[sdifr%]"  # %s %d %%
    r"|\{[A-Za-z0-9_.\[\]:!]*\}"  # {name}
    r"|<[^>]*>"  # HTML tags
    r"|`[^`]*`|--[A-Za-z][\w-]*"  # code and command-line options
    r"|\b[A-Z][A-Z0-9_]*=[^\s)]+"  # settings (IAM_DEV_MODE=true)
    r"|&[A-Za-z#0-9]+;"  # entities
    r"|https?://\S+|[\w.+-]+@[\w-]+\.[\w.-]+"  # URLs, mail addresses
    r"|\b[\w]*[\d_.][\w.]*\w\b|\b\w*\d\w*\b"  # words with digits, underscores, dots
    r"|\b(?:" + "|".join(sorted(LATIN_WORDS, key=len, reverse=True)) + r")\b"  # names and acronyms
    r"|\b(?:[A-Za-z]*[qwxyQWXY][A-Za-z]*)\b"  # foreign words (Windows, proxy, Entra)
)


def _word(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        pair = text[i : i + 2]
        if pair in _DIGRAPHS:
            out.append(_DIGRAPHS[pair])
            i += 2
            continue
        out.append(_LETTERS.get(text[i], text[i]))
        i += 1
    return "".join(out)


def transliterate(text: str) -> str:
    """Latin Serbian → Cyrillic, leaving what :data:`_KEEP` matches as it is."""
    for latin, cyrillic in _SPLIT_WORDS.items():
        text = re.sub(latin, lambda m, c=cyrillic: "\0" + c + "\1", text, flags=re.IGNORECASE)
    out: list[str] = []
    pos = 0
    for m in _KEEP.finditer(text):
        out.append(_word(text[pos : m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(_word(text[pos:]))
    return "".join(out).replace("\0", "").replace("\1", "")


def convert(source: Catalog, target_path: Path) -> None:
    target = Catalog(locale="sr_Cyrl", project=source.project, version=source.version)
    for message in source:
        if not message.id:
            continue
        if message.fuzzy:
            string: object = ("",) * len(message.string) if message.pluralizable else ""
        elif message.pluralizable:
            string = tuple(transliterate(s) for s in message.string)
        else:
            string = transliterate(message.string)
        target.add(
            message.id,
            string,
            locations=message.locations,
            flags=message.flags - {"fuzzy"},
            auto_comments=message.auto_comments,
            context=message.context,
        )
    target_path.parent.mkdir(parents=True, exist_ok=True)
    with target_path.open("wb") as f:
        write_po(f, target, width=0, ignore_obsolete=True)


if __name__ == "__main__":
    with Path(sys.argv[1]).open("rb") as f:
        catalog = read_po(f)
    convert(catalog, Path(sys.argv[2]))
