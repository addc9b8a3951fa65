"""`coordbot plan extract`: the shapes behind the first held-out documents' errors, each read in a general
way. The examples are written for these tests (not copied from the corpus)."""

from __future__ import annotations

from datetime import date

from coordbot.plan.extract import Task, extract_text

HEAD = "某区2025年重点工作任务分解方案\n"


def tasks(text: str, head: str = HEAD) -> list[Task]:
    return extract_text(head + text).tasks()


def names(found) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(f.value) for f in found]


def quantities(task: Task) -> list[tuple[float, str]]:
    return [(t.value, t.unit) for t in task.targets if t.value is not None and not t.implied]


def test_items_numbered_with_the_small_full_stop_are_separate_tasks() -> None:
    found = tasks(
        "一、主要目标\n"
        "1﹒地区生产总值增长6%左右。\n"
        "牵头责任单位：区发改局。\n"
        "2﹒一般公共预算收入增长5%左右﹐税收占比稳步提高。\n"
        "牵头责任单位：区财政局。\n"
    )
    assert [names(t.leads) for t in found] == [["区发改局"], ["区财政局"]]
    assert [quantities(t) for t in found] == [[(6.0, "%")], [(5.0, "%")]]
    assert found[1].source.startswith("2﹒")  # the document's own characters


def test_a_field_line_closed_by_a_full_stop_keeps_the_lines_after_it() -> None:
    (task,) = tasks(
        "一、主要任务\n"
        "1.建设人才公寓200套。\n"
        "牵头负责领导：张三。\n"
        "牵头责任单位：区住建局。\n"
        "协同责任单位：区财政局、区自然资源局等。\n"
    )
    assert names(task.leads) == ["区住建局"]
    assert names(task.co) == ["区财政局", "区自然资源局"]  # a leader's name is not a department


def test_a_note_inside_the_assignment_names_nobody() -> None:
    first, second, third = tasks(
        "一、主要任务\n"
        "1.推进数据共享。（区数据局、区财政局、区审计局负责，排在第一位的部门为牵头部门，下同）\n"
        "2.优化审批流程。（区审批局、区司法局负责。列第一位者为牵头单位，下同）\n"
        "3.加强信用监管。（区市场监管局、区发改局负责）\n"
    )
    assert (names(first.leads), names(first.co)) == (["区数据局"], ["区财政局", "区审计局"])
    assert (names(second.leads), names(second.co)) == (["区审批局"], ["区司法局"])
    assert (names(third.leads), names(third.co)) == (["区市场监管局"], ["区发改局"])


def test_a_traditional_character_copy_reads_like_the_simplified_one() -> None:
    (task,) = tasks(
        "一、主要任務\n"
        "1.繼續減免殘疾人就業保障金,實施階段性下調失業保險費率50%的政策,全年新增就業崗位3000個。"
        "(區殘聯、區財政局、區稅務局負責)\n",
        head="某區2025年穩就業實施方案\n",
    )
    assert names(task.leads) == ["區殘聯"]  # as written: the source keeps its characters
    assert names(task.co) == ["區財政局", "區稅務局"]
    assert quantities(task) == [(3000.0, "个")]  # a rate cut by 50% is the policy's parameter, not a target


def test_a_table_dumped_one_cell_per_line_with_bars_and_a_leader_column() -> None:
    found = tasks(
        "附件\n"
        "序号 |\n"
        "工作任务 |\n"
        "分管领导 |\n"
        "牵头责任单位 |\n"
        "责任单位 |\n"
        "1 |\n"
        "新建社区食堂10个,覆盖全部街道,让老年人就近用餐 |\n"
        "李 四 |\n"
        "区民政局 |\n"
        "各街道 |\n"
        "||\n"
        "2 |\n"
        "改造老旧小区15个。 |\n"
        "王 五 |\n"
        "区住建局 |\n"
        "区财政局、区城管局 |\n"
    )
    assert [(names(t.leads), names(t.co)) for t in found] == [
        (["区民政局"], ["各街道"]),
        (["区住建局"], ["区财政局", "区城管局"]),
    ]
    assert [quantities(t) for t in found] == [[(10.0, "个")], [(15.0, "个")]]
    assert "李" not in found[0].source and "|" not in found[0].source  # the leader is not the task's text


def test_a_deadline_cell_naming_only_a_month() -> None:
    found = tasks(
        "序号\n民生实事\n责任单位\n完成时限\n"
        "1\n建成口袋公园3个。\n区城管局\n9月投入使用\n"
        "2\n新增停车泊位500个。\n区交通局\n11月底前\n"
    )
    assert [[d.value for d in t.deadlines] for t in found] == [[date(2025, 9, 30)], [date(2025, 11, 30)]]
    assert [names(t.leads) for t in found] == [["区城管局"], ["区交通局"]]


def test_an_amount_the_task_sets_up_is_a_quantity() -> None:
    task, policy = tasks(
        "一、主要任务\n"
        "1.加大财政支持。整合各部门涉企资金,设立1.5亿元产业发展专项引导资金,对符合条件的企业给予扶持。"
        "（区财政局牵头，区工信局配合）\n"
        "2.延续阶段性下调工伤保险缴费负担50%的政策。（区人社局负责）\n"
    )
    assert quantities(task) == [(1.5, "亿元")]
    assert quantities(policy) == []  # "…50%的政策": the policy's parameter
