"""Plans in one database stay apart (issue 15, item 1): the shipped Songjiang plan and a district's 实事 table
whose department codes (amr, finance …) and task codes (1.1, 2.1, S.2) collide with it.

Departments, aliases and contacts belong to an organisation: one per plan unless plans name the same one.
A code several plans use is refused without its plan; a plan whose code changed is not duplicated silently.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coordbot.channels.base import Inbound, MemoryChannel
from coordbot.cli import main
from coordbot.core.clock import FakeClock
from coordbot.core.db import session_scope
from coordbot.plan import service
from coordbot.plan.contacts import create_invite, redeem_invite
from coordbot.plan.loader import LoadedPlan, load_plan_file, parse_plan_text
from coordbot.plan.models import Contact, CrossRequest, Department, Organisation, Plan, Task
from coordbot.replies.conversation import Conversation
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.engine import ReminderEngine
from coordbot.scheduling.models import ReminderOccurrence

ROOT = Path(__file__).resolve().parents[2]
SONGJIANG = ROOT / "config" / "plans" / "songjiang-ip-2024-2026.yaml"
DISTRICT = ROOT / "tests" / "data" / "plans" / "district-shishi-2026.yaml"
HOLIDAYS = ROOT / "config" / "holidays"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _import(engine: Engine, loaded: LoadedPlan, **kw: object) -> service.ImportReport:
    with session_scope(engine) as s:
        return service.import_plan(session=s, loaded=loaded, **kw)  # type: ignore[arg-type]


@pytest.fixture
def two_plans(engine: Engine) -> tuple[LoadedPlan, LoadedPlan]:
    a, b = load_plan_file(SONGJIANG), load_plan_file(DISTRICT)
    _import(engine, a)
    _import(engine, b)
    return a, b


def _dept(s: Session, plan_code: str, code: str) -> Department:
    plan = s.exec(select(Plan).where(Plan.code == plan_code)).one()
    return s.exec(
        select(Department).where(Department.organisation_id == plan.organisation_id, Department.code == code)
    ).one()


def _bind(engine: Engine, plan_code: str, dept: str, address: str, name: str) -> int:
    """Bound the way the office does it: an invite for the plan's department, redeemed on a chat."""
    with session_scope(engine) as s:
        new = create_invite(session=s, department_code=dept, plan_code=plan_code, name=name)
        return redeem_invite(session=s, code=new.code, channel="telegram", address=address).id  # type: ignore[return-value]


def test_departments_and_aliases_stay_each_plans_own(engine: Engine, two_plans) -> None:
    songjiang, district = two_plans
    with Session(engine) as s:
        orgs = s.exec(select(Organisation.code).order_by(col(Organisation.code))).all()
        assert orgs == ["minhang-shishi-2026", "songjiang-ip-2024-2026"]
        sj, mh = _dept(s, "songjiang-ip-2024-2026", "finance"), _dept(s, "minhang-shishi-2026", "finance")
        assert sj.id != mh.id
        # The second import renamed nothing and wiped no alias of the first plan's 区财政局.
        assert (sj.name, sj.aliases) == ("上海市松江区财政局", ["财政局", "松江区财政局", "财政"])
        assert (mh.name, mh.aliases) == ("上海市闵行区财政局", ["区财政局", "财政局"])
        assert _dept(s, "songjiang-ip-2024-2026", "amr").short_name == "区市场监管局（区知识产权局）"
        # Tasks point at their own organisation's departments only.
        for plan_code in ("songjiang-ip-2024-2026", "minhang-shishi-2026"):
            plan = s.exec(select(Plan).where(Plan.code == plan_code)).one()
            leads = s.exec(
                select(Department.organisation_id)
                .join(Task, col(Task.lead_department_id) == Department.id)
                .where(Task.plan_id == plan.id)
            ).all()
            assert set(leads) == {plan.organisation_id}
            view = service.plan_view(session=s, plan=plan)
            assert ("lingang_sj" in view.departments) == (plan_code == "songjiang-ip-2024-2026")
            assert ("housing" in view.departments) == (plan_code == "minhang-shishi-2026")
    # Re-importing either plan changes nothing (no tug of war over shared codes).
    assert not _import(engine, songjiang).changed
    assert not _import(engine, district).changed


async def test_a_contact_of_one_plan_never_gets_the_other_plans_reminders(engine: Engine, two_plans) -> None:
    sj_finance = _bind(engine, "songjiang-ip-2024-2026", "finance", "5001", "松江财政联络员")
    mh_finance = _bind(engine, "minhang-shishi-2026", "finance", "6001", "闵行财政联络员")
    mh_office = _bind(engine, "minhang-shishi-2026", "gov_office", "6002", "闵行区府办联络员")
    clock = FakeClock(datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI))
    channel = MemoryChannel("telegram")
    eng = ReminderEngine(engine=engine, calendar=WorkCalendar(HOLIDAYS), clock=clock, channels={"telegram": channel})
    eng.sync()
    with Session(engine) as s:
        plan_of = {
            contact: {
                p
                for p in s.exec(
                    select(Plan.code)
                    .join(Task, col(Task.plan_id) == Plan.id)
                    .join(ReminderOccurrence, col(ReminderOccurrence.task_id) == Task.id)
                    .where(ReminderOccurrence.contact_id == contact)
                ).all()
            }
            for contact in (sj_finance, mh_finance, mh_office)
        }
        s2 = {
            p: s.exec(
                select(ReminderOccurrence.contact_id)
                .join(Task, col(Task.id) == ReminderOccurrence.task_id)
                .join(Plan, col(Plan.id) == Task.plan_id)
                .where(Task.code == "S.2", Plan.code == p)
            ).all()
            for p in ("songjiang-ip-2024-2026", "minhang-shishi-2026")
        }
    assert plan_of[sj_finance] == {"songjiang-ip-2024-2026"}  # Songjiang's S.2 is led by its 区财政局
    assert plan_of[mh_office] == {"minhang-shishi-2026"}
    assert "songjiang-ip-2024-2026" not in plan_of[mh_finance]
    assert set(s2["songjiang-ip-2024-2026"]) == {sj_finance}
    assert set(s2["minhang-shishi-2026"]) == {mh_office}
    clock.set(datetime(2026, 3, 2, 9, 31, tzinfo=SHANGHAI))
    await eng.tick()
    heads = [(m.address, m.text.splitlines()[0]) for m in channel.sent]
    assert ("5001", "<b>任务S.2 加强投入保障</b>") in heads
    assert ("6002", "<b>任务S.2 实事项目进展月报</b>") in heads
    songjiang_titles = {t.title for _, t in songjiang_tasks(engine)}
    assert not [h for a, h in heads if a in {"6001", "6002"} and any(title in h for title in songjiang_titles)]


def songjiang_tasks(engine: Engine) -> list[tuple[str, Task]]:
    with Session(engine) as s:
        rows = s.exec(select(Plan.code, Task).join(Task, col(Task.plan_id) == Plan.id)).all()
        return [(p, t) for p, t in rows if p == "songjiang-ip-2024-2026"]


def test_an_ambiguous_task_code_is_refused_with_the_plans(engine: Engine, two_plans) -> None:
    with Session(engine) as s:
        with pytest.raises(service.TaskLookupError) as err:
            service.find_task(session=s, code="2.1")
        assert err.value.plans == ["minhang-shishi-2026", "songjiang-ip-2024-2026"]
        assert "--plan" in str(err.value)
        assert service.find_task(session=s, code="2.1", plan_code="minhang-shishi-2026").title == "中小学课后服务全覆盖"
        assert service.find_task(session=s, code="5.3").title  # only Songjiang has 5.3: no plan needed
        with pytest.raises(service.TaskLookupError, match="no plan 'nope'"):
            service.find_task(session=s, code="2.1", plan_code="nope")
        with pytest.raises(ValueError, match=r"several plans \(minhang-shishi-2026, songjiang-ip-2024-2026\)"):
            create_invite(session=s, department_code="finance", name="某人")


def test_the_cli_asks_for_the_plan(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COORDBOT_DATABASE_URL", db_url)
    monkeypatch.setenv("COORDBOT_CONFIG", str(tmp_path / "no-config.yaml"))
    runner = CliRunner()

    def cli(*args: str, ok: bool = True) -> str:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert (result.exit_code == 0) == ok, result.output
        return result.output

    cli("plan", "import", str(SONGJIANG))
    cli("plan", "import", str(DISTRICT))
    out = cli("reminders", "preview", "2.1", ok=False)
    assert "task '2.1' is in several plans: minhang-shishi-2026, songjiang-ip-2024-2026; say which with --plan" in out
    assert "several plans" in cli("reminders", "list", "--task", "S.2", ok=False)
    assert "task 2.1:" in cli("reminders", "preview", "2.1", "--plan", "minhang-shishi-2026", "--days", "30")
    cli("reminders", "list", "--task", "S.2", "--plan", "songjiang-ip-2024-2026")
    assert "give one with --plan" in cli("contacts", "invite", "finance", "--name", "某人", "--bot", "b", ok=False)
    out = cli("contacts", "invite", "housing", "--name", "房管联络员", "--bot", "b")  # one plan has it
    assert "invite for 房管联络员" in out
    cli("contacts", "invite", "finance", "--name", "某人", "--bot", "b", "--plan", "minhang-shishi-2026")
    invited = cli("contacts", "list")
    assert re.search(r"^minhang-shishi-2026/finance\s+contact\s+某人", invited, flags=re.M), invited
    listed = cli("departments", "list", "--plan", "minhang-shishi-2026")
    assert "housing" in listed and "lingang_sj" not in listed
    # Without --plan, each organisation's departments under its heading: finance is two departments here.
    everything = cli("departments", "list")
    headings = [line for line in everything.splitlines() if not line.startswith(" ")]
    assert [h.split("—")[-1].strip() for h in headings] == [
        "plans: minhang-shishi-2026",
        "plans: songjiang-ip-2024-2026",
    ], everything
    assert len(re.findall(r"^  finance\s", everything, flags=re.M)) == 2, everything
    assert everything.index("lingang_sj") > everything.index(headings[1]) > everything.index("housing")


def _say(conv: Conversation, uid: str, text: str, sender: str) -> str:
    """A message as the adapters hand it over: ``/report 2.1 …`` as a command with its arguments."""
    command, _, args = text.removeprefix("/").partition(" ") if text.startswith("/") else ("", "", "")
    kind = {"kind": "command", "command": command, "args": args} if command else {}
    reply = conv.handle(
        Inbound(
            channel="telegram", external_id=uid, chat_id=sender, sender_id=sender, text=text, message_ref=uid, **kind
        )
    )
    assert reply is not None
    return reply.text


def test_chat_codes_and_department_names_are_the_persons_plans(engine: Engine, two_plans) -> None:
    mh = _bind(engine, "minhang-shishi-2026", "edu", "7001", "闵行教育联络员")
    conv = Conversation(
        engine=engine,
        calendar=WorkCalendar(HOLIDAYS),
        clock=FakeClock(datetime(2026, 3, 4, 10, 0, tzinfo=SHANGHAI)),
    )
    # 2.1 in Minhang's organisation is its own 课后服务 task; 区财政局 is Minhang's, not Songjiang's.
    reply = _say(conv, "m1", "/report 2.1 已覆盖80%学校，需区财政局配合落实经费", "7001")
    assert "未找到任务" not in reply and "不属于" not in reply, reply
    with Session(engine) as s:
        [req] = s.exec(select(CrossRequest)).all()
        assert req.to_department_id == _dept(s, "minhang-shishi-2026", "finance").id
        assert s.get(Contact, mh) is not None
    # Songjiang's 5.3 is not in this person's plans.
    assert "未找到任务" in _say(conv, "m2", "/report 5.3 已完成", "7001")


def test_codes_shared_inside_one_organisation_need_the_plan(engine: Engine) -> None:
    shared = DISTRICT.read_text(encoding="utf-8").replace(
        "  office: gov_office\n", "  office: gov_office\n  organisation: minhang\n"
    )
    second = (
        shared.replace("minhang-shishi-2026", "minhang-shishi-2027")
        .replace("2026年闵行区政府实事项目任务分解表", "2027年闵行区政府实事项目任务分解表")
        .replace("闵府办〔2026〕3号", "闵府办〔2027〕2号")
    )
    _import(engine, parse_plan_text(shared, "a.yaml"))
    report = _import(engine, parse_plan_text(second, "b.yaml"))
    assert not any("department" in c for c in report.changes)  # shared, not created twice
    with Session(engine) as s:
        assert len(s.exec(select(Department).where(Department.code == "finance")).all()) == 1
    _bind(engine, "minhang-shishi-2026", "edu", "7001", "闵行教育联络员")
    conv = Conversation(
        engine=engine, calendar=WorkCalendar(HOLIDAYS), clock=FakeClock(datetime(2026, 3, 4, 10, tzinfo=SHANGHAI))
    )
    assert "任务 2.1 在多个计划中（minhang-shishi-2026、minhang-shishi-2027），请写成 2.1@计划编号" in _say(
        conv, "x1", "/report 2.1 进展顺利", "7001"
    )
    assert "未找到任务" not in _say(conv, "x2", "/report 2.1@minhang-shishi-2027 进展顺利", "7001")

    # A plan of a shared organisation does not silently rename what the other plan uses …
    renamed = second.replace("上海市闵行区财政局", "闵行区财政局（新）").replace(
        "aliases: [区财政局, 财政局]", "aliases: [区财政]"
    )
    with pytest.raises(service.ImportRefused, match=r"shared with plans minhang-shishi-2026.*--update-organisation"):
        _import(engine, parse_plan_text(renamed, "b.yaml"))
    # … adds aliases without wiping the others' …
    more = second.replace("aliases: [区财政局, 财政局]", "aliases: [区财政]")
    _import(engine, parse_plan_text(more, "b.yaml"))
    with Session(engine) as s:
        assert _dept(s, "minhang-shishi-2026", "finance").aliases == ["区财政局", "财政局", "区财政"]
    # … and changes them for every plan when asked.
    _import(engine, parse_plan_text(renamed, "b.yaml"), update_organisation=True)
    with Session(engine) as s:
        dept = _dept(s, "minhang-shishi-2026", "finance")
        assert (dept.name, dept.aliases) == ("闵行区财政局（新）", ["区财政"])


def test_a_changed_plan_code_asks_for_rename(engine: Engine) -> None:
    _import(engine, load_plan_file(DISTRICT))
    text = DISTRICT.read_text(encoding="utf-8").replace("code: minhang-shishi-2026", "code: mh-shishi-2026")
    with pytest.raises(service.ImportRefused, match=r"same title and document number: .*--rename minhang-shishi-2026"):
        _import(engine, parse_plan_text(text, "renamed.yaml"))
    with Session(engine) as s:
        assert s.exec(select(Plan.code)).all() == ["minhang-shishi-2026"]  # nothing imported
    with pytest.raises(service.ImportRefused, match="no plan 'nope' to rename"):
        _import(engine, parse_plan_text(text, "renamed.yaml"), rename="nope")
    report = _import(engine, parse_plan_text(text, "renamed.yaml"), rename="minhang-shishi-2026")
    assert report.changes == ["~ plan minhang-shishi-2026 renamed to mh-shishi-2026"]
    with Session(engine) as s:
        assert s.exec(select(Plan.code)).all() == ["mh-shishi-2026"]
        assert len(s.exec(select(Task)).all()) == 4  # the same tasks, not a duplicate plan
    # Deliberately a second plan from the same table: asked for explicitly.
    again = DISTRICT.read_text(encoding="utf-8").replace("code: minhang-shishi-2026", "code: mh-copy")
    assert _import(engine, parse_plan_text(again, "copy.yaml"), new_plan=True).created


def test_a_plan_moves_organisation_only_when_nothing_else_uses_it(engine: Engine) -> None:
    _import(engine, load_plan_file(DISTRICT))
    named = DISTRICT.read_text(encoding="utf-8").replace(
        "  office: gov_office\n", "  office: gov_office\n  organisation: minhang\n"
    )
    report = _import(engine, parse_plan_text(named, "named.yaml"))
    assert report.changes == ["~ organisation minhang-shishi-2026 renamed to minhang"]
    _import(engine, load_plan_file(SONGJIANG))
    other = named.replace("organisation: minhang", "organisation: songjiang-ip-2024-2026")
    with pytest.raises(service.ImportRefused, match="cannot move to another organisation"):
        _import(engine, parse_plan_text(other, "other.yaml"))
    # A new plan coded like an existing organisation does not join it without saying so.
    clash = (
        SONGJIANG.read_text(encoding="utf-8")
        .replace("code: songjiang-ip-2024-2026", "code: minhang")
        .replace("title: 上海市松江区", "title: 闵行区")
        .replace("document_no: 沪松府〔2024〕41号", "document_no: x")
        .replace("source: songjiang-ip-plan-2024-2026.txt", "source: other.txt")
    )
    with pytest.raises(service.ImportRefused, match="organisation 'minhang' exists already"):
        _import(engine, parse_plan_text(clash, "clash.yaml"))


def test_a_plans_weekly_digest_goes_to_its_own_office_and_leaders(engine: Engine, two_plans) -> None:
    from coordbot.reports.digest import queue_weekly_digest

    sj_office = _bind(engine, "songjiang-ip-2024-2026", "amr", "8001", "松江办公室")
    mh_office = _bind(engine, "minhang-shishi-2026", "gov_office", "8002", "闵行区府办")
    with session_scope(engine) as s:
        for contact_id in (sj_office, mh_office):
            s.get(Contact, contact_id).role = "office"  # type: ignore[union-attr]
    with session_scope(engine) as s:
        plan = s.exec(select(Plan).where(Plan.code == "minhang-shishi-2026")).one()
        sent = queue_weekly_digest(
            session=s, plan=plan, now=datetime(2026, 3, 6, 16, tzinfo=SHANGHAI), calendar=WorkCalendar(HOLIDAYS)
        )
    with Session(engine) as s:
        recipients = set(s.exec(select(ReminderOccurrence.contact_id).where(ReminderOccurrence.kind == "notice")))
    assert (sent, recipients) == (1, {mh_office})
