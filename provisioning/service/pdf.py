"""The PDF helpers moved to the core (:mod:`iam.pdf`) so the audit reports use them too."""

from iam.pdf import FAMILY, document, font_files

__all__ = ["FAMILY", "document", "font_files"]
