"""What was backed up, restored and rehearsed (R-OPS-2: a restore is tested every six months)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from iam.db import Base, new_id


class BackupRecord(Base):
    """One backup made (``created``), restored (``restore``) or rehearsed (``drill``)."""

    __tablename__ = "backup_records"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    ok: Mapped[bool]
    file: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(256))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
