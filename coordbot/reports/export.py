"""``coordbot plan export``: one plan's whole history as a portable archive for the office's records.

A zip that needs no coordbot to read: ``manifest.json`` (what the archive holds: plan, time of export,
schema revision, every file with its row count and SHA-256), the plan file as imported (``plan.yaml``, when
the file the plan was imported from is still there unchanged), every table of the plan as JSON (lossless:
nested values stay nested) and the flat ones also as CSV (UTF-8 with a byte-order mark, so a spreadsheet
opens the Chinese text right), and the digest and briefing files that were written (``files/``).

Contacts are listed by name, role and department, without their chat addresses: an archive for the records
is no address book.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, SQLModel, col, select

from coordbot.core.backup import atomic_path
from coordbot.core.db import row_id
from coordbot.core.events import Event, EventType
from coordbot.core.paths import locate
from coordbot.plan.models import (
    Contact,
    CrossRequest,
    Department,
    Extension,
    Meeting,
    Observation,
    Organisation,
    Plan,
    ProgressReport,
    Target,
    Task,
    TaskDepartment,
    TaskGroup,
)
from coordbot.reports.models import Briefing, Digest
from coordbot.scheduling.models import ReminderOccurrence

FORMAT = "coordbot-plan-export"
FORMAT_VERSION = 1
# Contacts' fields in the archive: never the address (a chat id, a phone's userid, an e-mail address).
CONTACT_FIELDS = ("id", "department_id", "name", "role", "channel", "language", "active", "unreachable", "bound_at")


@dataclass
class Export:
    path: Path
    plan_code: str
    counts: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    size: int = 0


def _plain(value: Any) -> Any:
    """A value as JSON has it: ISO dates and times (with their offset), decimals as written, nested as is."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _records(rows: Iterable[SQLModel], fields: Sequence[str] | None = None) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        data = row.model_dump()
        if fields is not None:
            data = {k: data[k] for k in fields}
        out.append({k: _plain(v) for k, v in data.items()})
    return out


def _csv(records: list[dict[str, Any]], columns: Sequence[str]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for r in records:
        writer.writerow(
            {k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v for k, v in r.items()}
        )
    return buf.getvalue().encode("utf-8-sig")


def _json(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=1, sort_keys=False) + "\n").encode("utf-8")


def _columns(model: type[SQLModel], fields: Sequence[str] | None = None) -> list[str]:
    return list(fields) if fields is not None else list(model.model_fields)


class _Archive:
    def __init__(self, zf: zipfile.ZipFile, export: Export) -> None:
        self.zf, self.export = zf, export
        self.manifest: dict[str, dict[str, Any]] = {}

    def add(self, name: str, data: bytes, *, rows: int | None = None, **extra: Any) -> None:
        self.zf.writestr(name, data)
        entry: dict[str, Any] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        if rows is not None:
            entry["rows"] = rows
        self.manifest[name] = {**entry, **extra}
        self.export.files.append(name)

    def table(
        self,
        name: str,
        model: type[SQLModel],
        rows: Sequence[SQLModel],
        *,
        fields: Sequence[str] | None = None,
        csv_too: bool = True,
        extra: dict[str, list[Any]] | None = None,
    ) -> None:
        records = _records(rows, fields)
        for column, values in (extra or {}).items():
            for rec, value in zip(records, values, strict=True):
                rec[column] = value
        self.export.counts[name] = len(records)
        self.add(f"{name}.json", _json(records), rows=len(records))
        if csv_too:
            columns = [*_columns(model, fields), *(extra or {})]
            self.add(f"{name}.csv", _csv(records, columns), rows=len(records))

    def stored_file(self, kind: str, row_id_: int, path: str, sha256: str) -> str | None:
        """A digest's or briefing's file under files/, when it is still there as it was written."""
        if not path:
            return None
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError:
            self.export.warnings.append(f"{kind} {row_id_}: its file {path} is gone; only its record is kept")
            return None
        digest = hashlib.sha256(data).hexdigest()
        name = f"files/{kind}-{row_id_}-{p.name}"
        self.add(name, data, source=path, matches_record=(not sha256 or digest == sha256))
        if sha256 and digest != sha256:
            self.export.warnings.append(f"{kind} {row_id_}: {path} changed since it was issued (archived as found)")
        return name


def _plan_file(session: Session, plan: Plan, override: Path | None) -> tuple[bytes | None, str]:
    """The plan file's bytes and where they came from, or None and why not: ``override``, else the file of
    the import that set the plan's current hash (its ``plan.imported`` event), if it is still unchanged."""
    if override is not None:
        return override.read_bytes(), str(override)
    imports = session.exec(
        select(Event)
        .where(Event.plan_id == plan.id, Event.type == EventType.PLAN_IMPORTED)
        .order_by(col(Event.id).desc())
    ).all()
    file = next((str(e.payload.get("file", "")) for e in imports if e.payload.get("sha256") == plan.source_sha256), "")
    if not file:
        return None, "no import of the plan's current version is recorded (give the file with --plan-file)"
    path = locate(Path(file))
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"the plan file {file} cannot be read ({exc.strerror}; give it with --plan-file)"
    if hashlib.sha256(data).hexdigest() != plan.source_sha256:
        return None, f"the plan file {file} changed since it was imported (give the imported one with --plan-file)"
    return data, str(path)


def export_plan(
    *,
    session: Session,
    plan: Plan,
    out: Path,
    now: datetime,
    revision: str | None,
    plan_file: Path | None = None,
) -> Export:
    """Write ``plan``'s archive to ``out`` (replaced only once complete)."""
    pid = row_id(plan)
    export = Export(path=out, plan_code=plan.code)
    tasks = session.exec(select(Task).where(Task.plan_id == pid).order_by(col(Task.id))).all()
    task_ids = [row_id(t) for t in tasks]
    targets = session.exec(select(Target).where(Target.plan_id == pid).order_by(col(Target.id))).all()
    target_ids = [row_id(t) for t in targets]
    co = session.exec(
        select(TaskDepartment).where(col(TaskDepartment.task_id).in_(task_ids)).order_by(col(TaskDepartment.task_id))
    ).all()
    reports = session.exec(
        select(ProgressReport).where(col(ProgressReport.task_id).in_(task_ids)).order_by(col(ProgressReport.id))
    ).all()
    dept_ids = {t.lead_department_id for t in tasks} | {c.department_id for c in co}
    dept_ids |= {r.department_id for r in reports}
    departments = session.exec(select(Department).where(col(Department.id).in_(dept_ids)).order_by(col(Department.id)))
    events = session.exec(
        select(Event)
        .where(or_(col(Event.plan_id) == pid, col(Event.task_id).in_(task_ids)))
        .order_by(col(Event.at), col(Event.id))
    ).all()
    contact_ids = {e.contact_id for e in events if e.contact_id} | {r.contact_id for r in reports if r.contact_id}
    reminders = session.exec(
        select(ReminderOccurrence).where(ReminderOccurrence.plan_id == pid).order_by(col(ReminderOccurrence.id))
    ).all()
    contact_ids |= {r.contact_id for r in reminders}
    contacts = session.exec(select(Contact).where(col(Contact.id).in_(contact_ids)).order_by(col(Contact.id))).all()
    digests = session.exec(select(Digest).where(Digest.plan_id == pid).order_by(col(Digest.id))).all()
    briefings = session.exec(select(Briefing).where(Briefing.plan_id == pid).order_by(col(Briefing.id))).all()

    with atomic_path(out, ".partial") as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        archive = _Archive(zf, export)
        data, source = _plan_file(session, plan, plan_file)
        if data is not None:
            archive.add("plan.yaml", data, source=source)
        else:
            export.warnings.append(f"plan.yaml left out: {source}")
        archive.add("plan.json", _json(_records([plan])[0]), rows=1)
        # whose departments these are (their organisation_id): one plan's, or shared by the plans that name it
        organisation = session.get(Organisation, plan.organisation_id)
        if organisation is not None:
            archive.add("organisation.json", _json(_records([organisation])[0]), rows=1)
        archive.table("departments", Department, list(departments))
        archive.table("groups", TaskGroup, session.exec(select(TaskGroup).where(TaskGroup.plan_id == pid)).all())
        archive.table("tasks", Task, tasks)
        archive.table("task_departments", TaskDepartment, co)
        archive.table("targets", Target, targets)
        archive.table(
            "observations",
            Observation,
            session.exec(
                select(Observation).where(col(Observation.target_id).in_(target_ids)).order_by(col(Observation.id))
            ).all(),
        )
        archive.table("reports", ProgressReport, reports)
        archive.table(
            "extensions",
            Extension,
            session.exec(
                select(Extension).where(col(Extension.task_id).in_(task_ids)).order_by(col(Extension.id))
            ).all(),
        )
        archive.table(
            "cross_requests",
            CrossRequest,
            session.exec(
                select(CrossRequest).where(col(CrossRequest.task_id).in_(task_ids)).order_by(col(CrossRequest.id))
            ).all(),
        )
        archive.table(
            "meetings",
            Meeting,
            session.exec(select(Meeting).where(Meeting.plan_id == pid).order_by(col(Meeting.id))).all(),
            csv_too=False,
        )
        archive.table("contacts", Contact, contacts, fields=CONTACT_FIELDS)
        archive.table("reminders", ReminderOccurrence, reminders)
        archive.table("events", Event, events)
        # A digest's hash is of its Markdown, whatever format its file has: only a briefing's is of its file.
        digest_files = [archive.stored_file("digest", row_id(d), d.path, "") for d in digests]
        archive.table("digests", Digest, digests, extra={"archived_file": digest_files})
        briefing_files = [archive.stored_file("briefing", row_id(b), b.path, b.content_sha256) for b in briefings]
        archive.table("briefings", Briefing, briefings, extra={"archived_file": briefing_files})
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "plan": {"code": plan.code, "title": plan.title, "issuer": plan.issuer, "document_no": plan.document_no},
            "exported_at": now.isoformat(),
            "coordbot_version": version("coordbot"),
            "schema_revision": revision,
            "counts": export.counts,
            "files": archive.manifest,
            "warnings": export.warnings,
            "notes": "JSON files are lossless; CSV files are UTF-8 with a BOM, nested values as JSON text; "
            "contacts carry no addresses.",
        }
        zf.writestr("manifest.json", _json(manifest))
        export.files.insert(0, "manifest.json")
    export.size = out.stat().st_size
    return export
