"""PDFs (the HR register, sealed envelopes, audit reports, the conformance report) with an
embedded Unicode font, so names print as written: "Grad Čačak", "Đorđe Anđelković", "Милош", "Nguyễn".

The font is Source Sans Pro from the Python package ``font-source-sans-pro`` (a dependency of
iam, SIL Open Font License); without it, DejaVu Sans from the Debian package
``fonts-dejavu-core``. fpdf2 embeds only the glyphs used.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from iam.errors import ConfigError

FAMILY = "Sans"
_DEBIAN = Path("/usr/share/fonts/truetype/dejavu")


def font_files() -> tuple[Path, Path]:
    """(regular, bold) TrueType files of the PDF font."""
    spec = importlib.util.find_spec("font_source_sans_pro")
    if spec is not None and spec.origin:
        folder = Path(spec.origin).parent / "files"
        regular, bold = folder / "SourceSansPro-Regular.ttf", folder / "SourceSansPro-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    regular, bold = _DEBIAN / "DejaVuSans.ttf", _DEBIAN / "DejaVuSans-Bold.ttf"
    if regular.is_file() and bold.is_file():
        return regular, bold
    raise ConfigError(
        "No Unicode font for the PDFs: install the Python package font-source-sans-pro "
        "(`pip install font-source-sans-pro`) or the Debian package fonts-dejavu-core."
    )


def document(**kwargs: Any) -> Any:
    """An ``fpdf.FPDF`` with the Unicode font registered as family ``Sans`` (regular, bold)."""
    from fpdf import FPDF

    pdf = FPDF(**kwargs)
    regular, bold = font_files()
    pdf.add_font(FAMILY, "", str(regular))
    pdf.add_font(FAMILY, "B", str(bold))
    pdf.set_font(FAMILY, "", 10)
    return pdf
