"""What one audit event looks like on the wire: RFC 5424 with structured data, CEF, JSON.

Every record carries the event's id and its position in the sealed chain (``seq``), so a
collector can drop the duplicates that at-least-once delivery may produce, and its chain
``hash``, so the copy in the SIEM can be matched against the provider's log.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from iam.models.audit import AuditEvent

#: The private enterprise number of the structured-data ids. 32473 is the number RFC 5612
#: reserves for documentation; an organisation with its own PEN may map it in the collector.
PEN = 32473
SD_EVENT = f"iam@{PEN}"
SD_ANCHOR = f"iamAnchor@{PEN}"

#: syslog facility 10 (security/authorization, "authpriv").
FACILITY = 10
_SYSLOG_SEVERITY = {"critical": 2, "significant": 4, "normal": 6}
_CEF_SEVERITY = {"critical": 10, "significant": 6, "normal": 3}


def event_dict(ev: AuditEvent) -> dict[str, Any]:
    """The event as JSON-ready data (what the ``json`` format sends)."""
    return {
        "id": ev.id,
        "seq": ev.seq,
        "at": _iso(ev.at),
        "event": ev.event,
        "severity": ev.severity,
        "outcome": ev.outcome,
        "actor": ev.actor,
        "subject": ev.subject,
        "client_id": ev.client_id,
        "ip": ev.ip,
        "user_agent": ev.user_agent,
        "details": ev.details or {},
        "hash": ev.hash,
    }


def anchor_dict(seq: int, digest: str, mac: str) -> dict[str, Any]:
    """The sealed chain head: the external anchor a collector keeps (see iam.audit_anchor)."""
    return {"kind": "anchor", "seq": seq, "hash": digest, "head_mac": mac}


def _iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sd_value(value: Any) -> str:
    """An RFC 5424 PARAM-VALUE: ``"``, ``\\`` and ``]`` escaped."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _sd(sd_id: str, params: dict[str, Any]) -> str:
    body = " ".join(f'{k}="{_sd_value(v)}"' for k, v in params.items() if v is not None and v != "")
    return f"[{sd_id} {body}]"


def _header(pri: int, at: str, hostname: str, app_name: str, msgid: str) -> str:
    msgid = "".join(c for c in msgid if "!" <= c <= "~")[:32] or "-"
    host = "".join(c for c in hostname if "!" <= c <= "~")[:255] or "-"
    return f"<{pri}>1 {at} {host} {app_name} - {msgid}"


def cef(data: dict[str, Any], *, version: str = "0.1") -> str:
    """ArcSight CEF:0 of one event (header fields escaped for ``|``, extension values for ``=``)."""

    def head(v: Any) -> str:
        return str(v).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    def ext(v: Any) -> str:
        return str(v).replace("\\", "\\\\").replace("=", "\\=").replace("\r", "\\r").replace("\n", "\\n")

    at = dt.datetime.fromisoformat(str(data["at"]).replace("Z", "+00:00"))
    fields = {
        "rt": int(at.timestamp() * 1000),
        "externalId": data["id"],
        "cn1Label": "seq",
        "cn1": data["seq"],
        "outcome": data["outcome"],
        "suser": data["actor"],
        "duser": data["subject"],
        "app": data["client_id"],
        "src": data["ip"],
        "requestClientApplication": data["user_agent"],
        "cs1Label": "details",
        "cs1": json.dumps(data["details"], sort_keys=True, separators=(",", ":"))
        if data["details"]
        else None,
        "cs2Label": "hash",
        "cs2": data["hash"],
    }
    extension = " ".join(f"{k}={ext(v)}" for k, v in fields.items() if v is not None and v != "")
    sev = _CEF_SEVERITY.get(str(data["severity"]), 3)
    return f"CEF:0|iam|iam|{head(version)}|{head(data['event'])}|{head(data['event'])}|{sev}|{extension}"


def _message(data: dict[str, Any], fmt: str) -> str:
    if fmt == "cef":
        return cef(data)
    if fmt == "json":
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    details = json.dumps(data["details"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{data['event']} {data['outcome']}" + (f" {details}" if data["details"] else "")


def syslog_event(data: dict[str, Any], *, fmt: str, hostname: str, app_name: str) -> bytes:
    """One RFC 5424 record (without framing) of an event."""
    pri = FACILITY * 8 + _SYSLOG_SEVERITY.get(str(data["severity"]), 6)
    sd = _sd(
        SD_EVENT,
        {
            "id": data["id"],
            "seq": data["seq"],
            "event": data["event"],
            "severity": data["severity"],
            "outcome": data["outcome"],
            "actor": data["actor"],
            "subject": data["subject"],
            "client": data["client_id"],
            "ip": data["ip"],
            "hash": data["hash"],
        },
    )
    head = _header(pri, data["at"], hostname, app_name, str(data["event"]))
    return f"{head} {sd} \ufeff{_message(data, fmt)}".encode()


def syslog_anchor(data: dict[str, Any], *, at: dt.datetime, hostname: str, app_name: str) -> bytes:
    """One RFC 5424 record of the chain head (MSGID ``anchor``)."""
    pri = FACILITY * 8 + 5  # notice
    sd = _sd(SD_ANCHOR, {"seq": data["seq"], "hash": data["hash"], "mac": data["head_mac"]})
    return f"{_header(pri, _iso(at), hostname, app_name, 'anchor')} {sd}".encode()


def line(data: dict[str, Any], *, fmt: str) -> bytes:
    """One line of the HTTPS stream: JSON (``json`` and ``rfc5424``) or CEF."""
    if fmt == "cef" and data.get("kind") != "anchor":
        return cef(data).encode()
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
