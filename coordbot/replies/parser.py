"""Progress-reply parser: one contact message → structured fields (pure, no I/O).

Rules the parser follows (tests/data/replies.yaml is the executable specification):
- Status is what the contact *said*; trajectory colours are the core's job. A percent, quantity or date
  alone does not imply a status, except 100% → done and 0% → not started (weak).
- "完成了3项 / completed 3 inspections" reports a quantity, not that the task is done; "预计月底完成" is a
  plan (weak on-track); "尚未完成" cancels done without choosing a status; a finished sub-step (初稿已完成,
  第一批…已完成, our part is done) is on-track, not done.
- Help requests (需区财政局配合 / waiting for the Finance Bureau) name departments and are a weak blocked
  signal; waiting for a party or an approval is a strong one. Strong signals beat weak ones; among strong
  ones the most severe wins (blocked > at risk > not started > on track), and done against anything but
  on-track is a conflict ("conflicting_status").
- Quantities: a number + measure word (or English noun) is matched to a target by unit fit and the nearest
  alias word; 个 and bare numbers need the alias. Targets (目标10项), plans (预计…), remainders (剩余3项),
  items a problem affects (两个卡在…) and values being corrected (7项有误) are not observations.
  Mode: the nearest marker before the number decides (累计/共/今年/截至/已达 → total, 本周/本月 → increment);
  then markers after it; then a sentence-leading 截至目前/今年; then 已 → total; else increment.
  At-date targets (a level such as 每万人口…拥有量) are totals. Under a cumulative (three-year) target 今年/今年新增
  is a period, so 今年新增5家 is +5; a sum over a period (本月…共3场, 9月已完成3项) is an increment; a month range
  from January (1-8月, Jan-Aug) or 上半年 is a total. Zeros, years (剑网2025) and month.day (4.26宣传周) are not counts.
- A done word about a part while the reply says the rest goes on (场地已落实 + a plan date, 贴息资金已落实，恢复正常
  推进, done + a percent below 100, done but 还有…没做) is on-track; an overall verdict (总体进展顺利) outweighs
  details; a question (完成了？) or a hedge (完成了吧，我问一下) asks instead of reporting.
- An expected date needs a future marker (预计/计划/争取/前/内/by/expected/…) or is a specific future date in
  a clause without past markers (so planned dates of activities count); dates of things that happened
  (昨天召开了…), as-of dates (截至6月底) and dates the contact says they will miss (6月底完不成) do not.
  With several, the latest wins (the last milestone); 原计划/originally marks a superseded one.
- When signals conflict the parser does not guess: it fills ``ambiguities`` so the bot asks one question.
- Work is linear in the input: same-length normalisation in C, bounded quantifiers only, capped matches per
  pattern, context windows clamped to ±160 characters, and only the first ``MAX_CHARS`` characters are
  analysed (a Telegram message is at most 4096).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from functools import lru_cache

from ._dates import DateHit, find_dates
from ._numbers import CN_CHARS, EN_WORDS, parse_number
from ._text import Clauses, detect_language, normalise
from .ambiguity import Ambiguity

MAX_CHARS = 4096  # Telegram caps a message at 4096 characters
MAX_NUMBERS = 128  # numeric tokens examined per reply
MAX_HITS = 64  # matches examined per keyword pattern


@dataclass(frozen=True, slots=True)
class TargetRef:
    """A metric target of the task the reply belongs to."""

    metric: str
    name: str
    unit: str
    aliases: tuple[str, ...] = ()
    period: str = "annual"  # annual | cumulative | at-date


@dataclass(frozen=True, slots=True)
class DepartmentRef:
    code: str
    name: str
    aliases: tuple[str, ...] = ()


class Status(StrEnum):
    DONE = "done"
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    BLOCKED = "blocked"
    NOT_STARTED = "not_started"


@dataclass(frozen=True, slots=True)
class Quantity:
    metric: str | None
    value: Decimal
    unit: str
    mode: str  # "increment" | "total"
    span: tuple[int, int]
    # as the contact wrote it (629.0 亿元, 5.34万个 → 53400 个); ``value``/``unit`` are in the target's unit
    written_value: Decimal | None = None
    written_unit: str | None = None
    evidence: str = ""  # the words that decided it: the number with its unit, and the mode marker if any
    mode_asked: bool = False  # total or increment is not said (TOTAL_OR_INCREMENT): ``mode`` is only the default

    @property
    def wan_yuan(self) -> Decimal | None:
        """Money normalised to 万元 (a quota in 万元 counts a reply in 亿元), else None."""
        factor = _MONEY_UNITS.get(self.written_unit or "")
        return None if factor is None or self.written_value is None else self.written_value * factor / 10_000


@dataclass(frozen=True, slots=True)
class ParsedReply:
    status: Status | None
    percent: Decimal | None  # exactly as written (53.3, 85.07, 105.9): completion only, never a share or growth
    quantities: tuple[Quantity, ...]
    expected_date: date | None
    help_departments: tuple[str, ...]
    task_code: str | None
    is_correction: bool
    language: str
    ambiguities: tuple[str, ...]
    confidence: float
    # the words that decided each field ({"percent": "完成年度目标的53.3%"}), for the confirmation message
    evidence: dict[str, str] = field(default_factory=dict)
    # SHARE_OR_PROGRESS: the percent that may be a share of the plan or its completion, as written (not in
    # ``percent`` until the contact says which)
    share_percent: Decimal | None = None


# What a contact answered to the bot's question about a reply (the conversation's buttons), keyed by the
# ambiguity it resolves: parsing the same text with the answer reads it as if the reply had said so.
SHARE_ANSWERS = ("progress", "share")  # SHARE_OR_PROGRESS: completion of the plan, or only a share of it
MODE_ANSWERS = ("total", "increment")  # TOTAL_OR_INCREMENT: the count so far, or new since the last report


# ---------------------------------------------------------------------------------------------- lexicon
STRONG, WEAK = 2, 1
_S = Status
# (phrase, status or None for "neutral: swallow this so a shorter keyword inside it does not fire", strength)
_ZH_WORDS: list[tuple[str, Status | None, int]] = [
    *((w, _S.DONE, STRONG) for w in (
        "完成", "办结", "落实完毕", "已落实", "已结束", "完工", "结项", "验收通过", "已验收", "报结", "销号",
        "完结", "搞定", "做完", "完毕", "完程", "完城", "全部结束", "已全部结束", "弄完", "搞完", "办完", "做好了",
        "弄好了", "印发实施",
        # official phrasing (issue 12)
        "已通过验收", "通过验收", "已提前完成", "提前完成", "超额完成", "已竣工", "竣工", "已全部完工", "全部完工",
        "全部办复", "办复", "办复完毕", "办复结束", "办理完毕", "答复完毕", "已全部办理", "已经解决",
        "已建成", "建成投用", "建成投运", "投入使用", "已投用", "已投产", "竣工投产", "圆满完成", "已出台", "已开通",
        "已上线", "已落实到位", "已全部落实",
    )),
    *((w, None, 0) for w in (
        "完成率", "办复率", "完成情况", "完成时间", "完成时限", "完成进度", "完成度", "完成节点", "完成后", "能否完成",
        "是否完成", "推进会", "风险排查", "风险防控", "风险防范", "防范风险", "困难企业", "不少于", "不断",
        "正常上班", "完成值", "任务完成", "确保完成", "督促完成", "按要求完成", "推进情况",
        # 在建 as an attribute of the items (203个在建重点项目) describes them, it is no verdict
        "在建项目", "在建重点项目", "在建重点", "在建工程", "在建的",
        "完成率", "完成进度", "完成度", "完成投资", "完成阶段目标", "确保如期完成",
        "如期完成目标", "高质高效完成", "顺利完成年度任务", "确保完成全年", "加快任务完成",
    )),
    *((w, _S.ON_TRACK, STRONG) for w in (
        "推进中", "正在推进", "正常推进", "有序推进", "稳步推进", "积极推进", "持续推进", "扎实推进", "加快推进",
        "按计划推进", "按计划", "按期推进", "按进度", "顺利", "进展顺利", "正常", "进展正常", "进行中", "正在进行",
        "在推进", "推进顺利", "有序开展", "正在开展", "开展中", "实施中", "正在实施", "办理中", "正在办理", "筹备中",
        "正在筹备", "进展良好", "符合预期", "按节点", "处理中", "正在做", "如期推进", "如期", "按期", "按时",
        "进度正常", "推进正常", "基本完成", "即将完成", "接近完成", "快完成", "差不多完成", "接近尾声", "收尾阶段",
        "大部分完成", "部分完成", "完成一部分", "完成了一部分", "推近中", "推进着", "在办", "正推进", "还在推进",
        "审核中", "评审中", "推进当中", "正在审核", "组建中",
        "建设中", "筹建中", "招募中", "对接中", "洽谈中", "编制中",
        "起草中", "修订中", "整改中", "征求意见中", "在弄", "在搞", "在做", "在进行", "还在进行", "正在收集",
        "试运行", "在走流程", "走流程中",
        # official phrasing (issue 12)
        "达到序时进度", "达到序时", "达序时", "达进度", "超进度", "超序时进度", "超序时", "按序时推进", "按序时",
        "按进度推进", "按进度实施", "进展情况良好", "年底前能确保完成", "能确保完成", "超过时间进度", "超时间进度",
        "超时间任务进度",
        "超均衡进度", "基本同步", "同步推进", "全面展开", "进展加快", "在建", "正在紧张建设", "提速推进",
        "完成情况较好", "高于目标", "有望在年底前完成", "能够圆满完成", "列入解决计划", "列入计划", "正在解决",
        "正在整改", "部分整改", "正在开展", "正在着手", "按期推进", "时间过半任务过半",
        "达到时间进度", "达时间进度", "符合时间进度", "达到时序进度", "符合序时进度", "已开工建设", "正在施工",
        "施工中", "已进场施工", "主体完工", "加紧推进", "全力推进", "有序实施", "稳步实施", "顺利实施",
    )),
    *((w, _S.ON_TRACK, WEAK) for w in (
        "已启动", "已经启动", "启动了", "走流程", "已开始", "已经开始", "开始了", "没有困难", "无困难", "暂无困难",
        "没有问题", "没问题", "无问题", "暂无问题", "没有风险", "无风险", "暂无风险", "没有滞后", "无滞后",
        "不会延期", "不会滞后", "没有延期", "不延期", "无需协调", "不需要协调", "不需协调", "已解决", "已经解决",
        "已协调好", "已协调解决", "已疏通", "收尾", "还行", "还可以", "刚启动", "已部署", "已协调",
    )),
    *((w, _S.AT_RISK, STRONG) for w in (
        "滞后", "有风险", "存在风险", "风险", "进度慢", "进度较慢", "进度偏慢", "进展缓慢", "进展较慢", "推进缓慢",
        "缓慢", "较慢", "偏慢", "有点慢", "比较慢", "可能延期", "延期", "推迟", "延迟", "延后", "来不及", "赶不上",
        "完不成", "难以完成", "无法按期", "无法按时", "不能按时", "不能按期", "难以按期", "无法完成", "不能完成",
        "恐难", "跟不上", "落后", "拖延", "有难度", "难度较大", "难度大", "压力较大", "压力大", "不理想",
        "不及预期", "低于预期", "未达预期", "申请延期", "顺延", "进度满", "滞厚", "差距较大", "差距大", "差距明显",
        "不确定性", "存在不确定", "没办法", "放缓",
        # official phrasing (issue 12)
        "未达序时进度", "未达到序时进度", "未达到序时", "未达序时", "欠进度", "欠序时", "低于序时", "略低于序时进度",
        "滞后于序时", "慢序时", "年底前不能全部完成", "不能全部完成", "完成有一定困难", "有一定困难", "不够理想",
        "推进不够力", "落后于计划", "塌目标", "低于目标", "未达到预期", "仅完成", "不能完成",
        "低于时间进度", "未达到时间进度", "未达时间进度", "慢于时间进度", "低于时序进度", "未达时序进度",
        "未达到时序进度", "进展不快", "进度不快", "推进不力",
    )),
    *((w, _S.BLOCKED, STRONG) for w in (
        "受阻", "阻碍", "障碍", "困难", "暂缓", "难题", "卡住", "卡在", "卡壳", "无法推进", "无法开展", "不能推进",
        "推不动", "推进不动", "停滞", "暂停", "搁置", "中止", "需协调", "需要协调", "亟需协调", "急需协调",
        "瓶颈", "遇到问题", "存在问题", "有问题", "无法落实", "僵持", "受限", "阻滞", "受租", "无法启动", "不能启动",
        "没批下来", "还没批", "未获批", "没回来", "还没回来", "没反馈", "还没反馈", "未反馈", "未回复", "没回复",
        "还没回复", "没出来", "还没出来", "没到位", "未到位", "还没到位", "尚未到位", "未下发", "没下发", "还没下发",
        # official phrasing (issue 12)
        "受上级政策限制", "客观条件制约", "暂时不能解决", "尚不能解决", "不能解决", "受条件限制", "停工",
        "暂时难以解决", "无法解决", "未予审批", "既未审核同意",
    )),
    *((w, _S.NOT_STARTED, STRONG) for w in (
        "未启动", "尚未启动", "还未启动", "还没启动", "没启动", "没有启动", "暂未启动", "未开始", "尚未开始",
        "还没开始", "还没有开始", "没开始", "没有开始", "暂未开始", "未开展", "尚未开展", "还未开展", "暂未开展",
        "还没开展", "没有开展", "没开展", "未动工", "还没动", "尚未着手", "还没着手", "未着手", "没办", "还没办",
        "未办", "还没搞", "没搞",
        # official phrasing (issue 12)
        "尚未开工", "未开工", "没有开工", "暂未实质性开工", "尚不具备开工条件", "暂无法开工", "尚未启动征地",
        "未实施", "未能开工",
    )),
]  # fmt: skip
_EN_WORDS: list[tuple[str, Status | None, int]] = [
    *((w, _S.DONE, STRONG) for w in (
        "done", "finished", "completed", "complete", "accomplished", "wrapped up", "closed out", "all done",
        "finsihed", "compelted", "completd", "finshed", "finish",
    )),
    *((w, None, 0) for w in ("half done", "halfway done", "completion rate", "completion date", "if completed")),
    *((w, _S.ON_TRACK, STRONG) for w in (
        "on track", "in progress", "ongoing", "underway", "under way", "going well", "going fine",
        "going smoothly", "smoothly", "on schedule", "as planned", "according to plan", "progressing",
        "proceeding", "in hand", "working on it", "moving forward", "on trak", "ontrack", "almost done",
        "nearly done", "nearly finished", "almost finished", "almost complete", "nearly complete",
        "close to done", "close to completion", "wrapping up", "all good", "in progess", "on-track",
        "ahead of plan", "ahead of schedule",
    )),
    *((w, _S.ON_TRACK, WEAK) for w in (
        "started", "kicked off", "no issues", "no problems", "no problem", "no blockers", "no delays", "no delay",
        "no risk", "resolved", "unblocked", "sorted out",
    )),
    *((w, _S.AT_RISK, STRONG) for w in (
        "at risk", "behind", "behind schedule", "delayed", "delay", "delays", "slipping", "slipped", "running late",
        "slow", "slower", "postponed", "postpone", "pushed back", "may slip", "might slip", "may miss",
        "might miss", "will miss", "won't make", "not going to make", "can't finish", "cannot finish",
        "won't finish", "need more time", "need an extension", "extension", "lagging", "risky", "a risk",
    )),
    *((w, _S.BLOCKED, STRONG) for w in (
        "blocked", "stuck", "blocker", "blockers", "on hold", "halted", "stalled", "can't proceed",
        "cannot proceed", "impediment", "roadblock", "bottleneck", "blocking",
    )),
    *((w, _S.NOT_STARTED, STRONG) for w in (
        "not started", "not yet started", "haven't started", "hasn't started", "have not started",
        "has not started", "yet to start", "not begun", "hasn't begun", "not kicked off", "not start yet",
    )),
]  # fmt: skip


def _alternation(words: Sequence[str], english: bool) -> str:
    parts = sorted({re.escape(w) for w in words}, key=len, reverse=True)
    body = "|".join(parts)
    return rf"\b(?:{body})\b" if english else f"(?:{body})"


_ZH_MAP = {w: (s, k) for w, s, k in _ZH_WORDS}
_EN_MAP = {w: (s, k) for w, s, k in _EN_WORDS}
# Two patterns, not one: a plain alternation of literals lets the regex engine skip ahead by first character,
# which a combined pattern with named groups or a leading \b defeats (≈100× slower on long input).
_ZH_STATUS_RE = re.compile(_alternation(list(_ZH_MAP), False))
_EN_STATUS_RE = re.compile(_alternation(list(_EN_MAP), False) + r"\b")
_NEGATOR = re.compile(
    r"(?:(?:尚未|还未|仍未|并未|暂未|未能|没能|未|还没有|还没|没有|没|并非|非|毫无|暂无|无(?!论|需)|难以|恐难|可能无法|"
    r"不一定|不(?![过少断仅但久同足]))"
    r"[^，,。；;！!？?\s但]{0,3}"
    r"|\b(?:not|no|never|without|isn't|aren't|hasn't|haven't|wasn't|didn't|don't|doesn't|won't|cannot|can't)\b"
    r"(?:\s{1,3}(?!but\b)[a-z']+){0,2}\s{0,3})$"
)
_CONTRAST = re.compile(r"但|但是|不过|然而|\bbut\b|\bhowever\b")
_RESOLVED = re.compile(r"已解决|已经解决|已协调好|已协调解决|已疏通|\bresolved\b|\bunblocked\b|\bsorted out\b")
_QTY_AFTER_DONE = re.compile(
    r"\s{0,3}(?:了|的|约|近|共|累计|总计|合计|各类|全年任务的|任务的)?\s{0,3}(?:[0-9]|[零〇一二两三四五六七八九十百千]|半|大半|过半|"
    r"大部分|百分之|about\s|around\s|approximately\s|an?\s)"
)
_PAST_DONE = re.compile(r"已|已经|均已|都已|\bhas\b|\bhave\b|\bhad\b|\bwas\b|\bwere\b|\bis\b|\bare\b|\bbeen\b|\ball\b")
_FUTURE_DONE = re.compile(
    r"预计|计划|争取|力争|拟|将|准备|打算|有望|保证|能够|能|可以|可|会|要|需要|需|应|尽快|(?<![提目])前|底|内|月|周|日|号|天|年"
    r"|\b(?:will|to|should|would|expect|expected|plan|planned|aim|hope|going|can|could|must|need|be|by|eta|soon)\b"
)
_NUM_SOON = re.compile(
    r"[^，,。；;]{0,8}?(?:[0-9]+(?:\.[0-9]+)?|[一二两三四五六七八九十]+)\s{0,3}"
    r"(?:亿|万|千|项|家|次|件|个|场|期|批|笔|名|人|元|户|所|篇|\b[a-z])"
)
_SUBSTEP = re.compile(
    r"我们这边|我方|我局这边|本单位这边|\bour part\b|\bour side\b|"
    r"初稿|阶段|前期|一期|初步|首批|部分|立项|选址|招标|摸底|征求意见|"
    r"第[0-9一二三四五六七八九十]+(?:次|场|批|轮|期|阶段|项)|#\s{0,3}[0-9]|\bno\.\s{0,3}[0-9]|"
    r"\bdraft\b|\bfirst phase\b|\bphase (?:1|one)\b|\bpartly\b"
)
_EN_FUTURE_POST = re.compile(r"\s{0,3}(?:by|before|within|in|next|soon|until|on time)\b")
# the contact asks or hedges instead of stating (完成了？/ 已经完成了吧，我问一下同事): the bot asks back
_QUESTION_END = re.compile(r"[?？]")
# an instruction or a plan, not a report: status words after it, or describing what it is about
# (进度滞后的事项，要强化督促 / 下一步…加快推进 / 计划：加快未开工项目尽快开工) report nothing
_INSTRUCTION = re.compile(
    r"下一步|计划[:：]|务必|必须|应当|(?<![需还只主重想也就])要(?:高度|切实|认真|进一步|强化|加强|加大|会同|严格|抓紧|"
    r"加快|确保|主动|积极|及时|全力|着力)"
)
_RELATIVE_AFTER = re.compile(r"[^，,。；;]{0,2}的")
_HEDGE = re.compile(
    r"吧\s{0,3}[，,。.!！~]?\s{0,3}$|吧[，,]|问一下|核实一下|确认一下再|再确认|再回复|"
    r"\bi think\b|\bnot sure\b|\bprobably\b"
)
# a status word followed by "：无" is a heading with nothing under it (需协调事项：无)
_NONE_AFTER = re.compile(r"[^，,。；;]{0,4}?[:：]\s{0,3}(?:无|没有|暂无|\bnone\b|\bn/a\b)")
# done, but something is left (完成了，但是还有两家企业复查没做 / 活动还差两场): the task is still in progress
_REMAINDER = re.compile(r"还有[^，,。；;]{0,12}?(?:没|未)|还差|尚差|其余|\bremaining\b|\bstill (?:have|need)\b")
# an overall verdict (总体进展顺利 / overall on track) outweighs details about sub-items
_OVERALL = re.compile(r"总体|整体|总的来说|总的来看|\boverall\b|\bin general\b")
_EXTENSION = re.compile(r"申请延期|申请顺延|延期申请|\b(?:need|request|requesting|ask for) an extension\b")
_PERIOD_FRAME = re.compile(r"本周|这周|上周|本月|这个月|这两天|今天|\bthis week\b|\blast week\b|\btoday\b")
_ITEMS_WHICH = re.compile(r"的(?:有|建议|提案|议案|问题|事项|项目)?\s{0,2}[0-9一二三四五六七八九十]")
_START_RATE = re.compile(r"(?:开工|复工|开、复工|开复工|开工建设)率")
_PLAN_WORD = re.compile(r"前|预计|计划|争取|力争|拟|将|可|能|会|要|\bwill\b|\bby\b")
_ATTRIBUTE_AFTER = re.compile(r"的(?![有是])[\u4e00-\u9fff]")
_ASOF_LEAD = re.compile(r"\s{0,3}(?:截至|截止)[^，,。；;]{1,12}[，,]")
_WHOLE = re.compile(r"全部|全面|全年|\ball\b")

# ------------------------------------------------------------------------------------------- quantities
_NUM_RE = re.compile(
    rf"(?<![0-9a-z.])([0-9]+(?:,[0-9]{{3}})*(?:\.[0-9]+)?)|([{CN_CHARS}]+(?:点[零〇一二三四五六七八九]{{1,6}})?)"
    r"|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\b"
)
_CN_ORDINAL_BEFORE = re.compile(r"[下上每前后头]$")
_LIST_MARKER = re.compile(r"\s{0,3}(?:、|\)|）|\.(?![0-9])|:|：)")
_PEOPLE = {"人", "名", "位", "人次"}
_BARE_MODE_AFTER = re.compile(r"\s{0,3}(?:in total|total|so far|to date|in all|altogether|ytd|added|more|new|累计|共)")
# not a count: 1-8月 (a month range), 4.26宣传周 / 3.15那会儿 (a month.day), a year (剑网2025)
_RANGE_AFTER = re.compile(r"\s{0,2}[-~至到]\s{0,2}(?:[0-9]{1,2}|[一二三四五六七八九十]{1,2})\s{0,2}月")
_MONTH_DAY = re.compile(r"(?:1[0-2]|[1-9])\.(?:3[01]|[12][0-9]|0?[1-9])")
# 10项已完成9项: the first number is the whole, the second the progress
_WHOLE_OF_AFTER = re.compile(
    r"\s{0,3}(?:中|里|当中)?\s{0,3}(?:已经|已|目前已|现已)\s{0,3}(?:完成|开展|做了|做)\s{0,3}(?:了)?\s{0,3}"
    r"(?:[0-9]|[一二两三四五六七八九十])"
)
# the number is done (全年十项已完成 / 惠企活动全年4次已完成): an observation even after 全年
_DONE_AFTER = re.compile(r"\s{0,3}(?:已经|已|均已|都已|全部)\s{0,3}(?:全部)?\s{0,3}(?:完成|办结|开展完|结束)")
# ongoing, applied for or affected items are not finished progress (1个在做 / 申报…14家 / 两次未回复)
_ONGOING_AFTER = re.compile(
    r"\s{0,3}(?:正在|在做|在研|在建|在办|进行中|推进中|\bongoing\b|\bin progress\b|\bunderway\b)"
)
_APPLIED_BEFORE = re.compile(r"(?:申报|报名)(?![^，,。；;]{0,20}(?:通过|认定|获批|入选))[^，,。；;]{0,20}$")
_NEXT_PERIOD = re.compile(r"\bnext (?:week|month|year|quarter)\b|下周|下个?月|下一步|下阶段|下半年")
_QUESTION_CLAUSE = re.compile(r"\s{0,8}[^。！!\n]{0,40}?[?？]")  # leading blanks do not count
_EN_FILLER = {"more", "new", "additional", "so", "in", "this", "to", "total", "now", "already", "yet", "each", "last",
              "done", "completed", "finished", "held", "of", "and", "or", "the"}  # fmt: skip
_OTHER_OBJECT_BEFORE = re.compile(
    r"(?:走访|调研|慰问|帮扶|参训|参会|覆盖|服务了|剩余|还剩|剩下|还差|尚余|还有|申报|报名|推荐|"
    r"remaining|left)\S{0,4}$"
)
# items in a state (在建项目16个): not finished progress toward a target, but with no target to count toward they
# are what an official report counts as of its date (issue 12: a count of items in a state reports that state)
_STATE_BEFORE = re.compile(r"(?:进行中|在研|在建|推进中|ongoing|in progress)\S{0,4}$")
# a plan word that is the object of the work done (完成全年目标任务的有46项 / 计划…实际开工150个): not a plan
_PLAN_DONE = re.compile(r"(?:完成|实现|超额完成|下达)[^，,。；;]{0,6}$")
_ACTUAL_AFTER_PLAN = re.compile(r"实际|已|的有|\bactual")
# a difference from another period (较上年同期增加3.2万家 / 比去年多5项) is growth, not an observation
_DIFFERENCE_BEFORE = re.compile(
    r"(?:较|比|同比|环比)[^，,。；;]{0,8}?(?:增加|减少|增长|下降|提高|降低|多|少)了?\s{0,2}(?:约|近)?\s{0,2}$"
)
# 由670件增加到5408件: the starting level is no observation; the level reached is a total
_FROM_LEVEL_AFTER = re.compile(r"\s{0,2}(?:增加|增长|提高|上升|扩大|减少|下降|降低)?\s{0,2}(?:到|至)")
_FROM_LEVEL_BEFORE = re.compile(r"(?:由|从)[^，,。；;由从]{0,20}$")
_TO_LEVEL_BEFORE = re.compile(
    r"(?:由|从)[^，,。；;]{0,40}?(?:增加|增长|提高|上升|扩大|减少|下降|降低)?(?:到|至)\s{0,2}$"
)
# "两个卡在评审环节 / 1项受阻": the items a problem affects, not progress
_STUCK_AFTER = re.compile(
    r"[^，,。；;]{0,6}?(?:卡在|卡住|受阻|滞后|延期|推迟|未完成|没完成|还没|尚未|未开展|没开展|未回复|没回复|有难度|"
    r"难度|恐难|\bstuck\b|\bblocked\b|\bdelayed\b)"
)
_BARE_MODE_BEFORE = re.compile(r"累计|共计|总计|合计|目前|达到|已达|\btotal\b|\bso far\b|\bnow\b|\bto date\b")
_GENERIC_MW_BEFORE = re.compile(r"(?:新增|增加|完成|开展|累计|共计|共|了|达到|已达|为|是|:|：|\s)\s{0,3}$")
_LEVEL_CHANGE = re.compile(r"提高|增加|上升|增长|新增|\bup\b|\bincrease")
_TOTAL_AFTER = re.compile(
    r"\b(?:so far|to date|in total|total|ytd|this year|cumulative)\b|^[^，,。；;0-9]{0,8}?(?:已全部|均已|全部|已)"
)
_INCR_AFTER = re.compile(r"\b(?:this week|this month|more|new)\b")
_LEAD_TOTAL = re.compile(r"\s{0,3}(?:截至|截止|到目前|目前|今年|至今|已完成|已开展|so far|to date|this year)")
_MEASURE = (
    "个百分点|百分点|亿美元|万美元|美元|平方米|公顷|亿元|万元|千元|元|场次|人次|项|家|次|件|个|场|期|批|户|所|笔|篇|名|人|位|天|年|月|周|日|号|点|小时|分钟|岁|倍|套|部|"
    "条|份|类|轮|本|张|台|处|届|万人|亿人"
)
_SUFFIX = re.compile(
    r"(?P<frac>\s{0,3}/\s{0,3}[0-9]{1,5}|\s{1,3}of\s{1,3}[0-9]{1,5}\b)?\s{0,3}(?P<approx>多|余|来)?\s{0,3}"
    r"(?:个(?=\s{0,2}[万亿]))?\s{0,2}(?P<mult>万|亿|千|百万|千万|k\b|thousand\b|m\b|mn\b|million\b|bn\b|billion\b)?\s{0,3}"
    r"(?P<cur>yuan\b|rmb\b|cny\b)?\s{0,3}"
    rf"(?P<approx2>多|余)?(?P<mw>{_MEASURE})?(?P<mw_tail>性)?"
)
_MONEY_UNITS = {"元": Decimal(1), "千元": Decimal(1000), "万元": Decimal(10_000), "亿元": Decimal(100_000_000)}
_MULT = {
    "万": Decimal(10_000), "亿": Decimal(100_000_000), "千": Decimal(1000), "百万": Decimal(1_000_000),
    "千万": Decimal(10_000_000), "k": Decimal(1000), "thousand": Decimal(1000), "m": Decimal(1_000_000),
    "mn": Decimal(1_000_000), "million": Decimal(1_000_000), "bn": Decimal(10**9), "billion": Decimal(10**9),
}  # fmt: skip
_COUNT_FAMILIES = (
    {"项", "次", "场", "场次", "期", "轮"},
    {"家", "户", "所"},
    {"件", "篇", "笔"},
    {"人", "名", "位", "人次"},
)
_NON_TARGET_MW = {
    "个百分点",
    "百分点",
    "天",
    "年",
    "月",
    "周",
    "日",
    "号",
    "点",
    "小时",
    "分钟",
    "岁",
    "倍",
    "届",
    "万人",
    "亿人",
}
_EN_NOUNS = {
    **dict.fromkeys(("item", "items", "project", "projects", "action", "actions", "campaign", "campaigns",
                     "inspection", "inspections", "check", "checks", "operation", "operations"), "项"),
    **dict.fromkeys(("company", "companies", "firm", "firms", "enterprise", "enterprises", "unit", "units",
                     "pilot", "pilots", "entity", "entities", "site", "sites", "business", "businesses",
                     "organisation", "organisations", "organization", "organizations"), "家"),
    **dict.fromkeys(("event", "events", "session", "sessions", "time", "times", "activity", "activities",
                     "training", "trainings", "workshop", "workshops", "round", "rounds", "meeting", "meetings",
                     "seminar", "seminars", "visit", "visits", "course", "courses"), "次"),
    **dict.fromkeys(("patent", "patents", "case", "cases", "application", "applications", "dispute", "disputes"),
                    "件"),
    **dict.fromkeys(("day", "days", "week", "weeks", "month", "months", "year", "years", "hour", "hours",
                     "people", "persons", "participants", "am", "pm"), "_skip"),
}  # fmt: skip
_EN_TAIL = re.compile(
    r"(?:\s{1,3}(?:more\s{1,3}|new\s{1,3}|additional\s{1,3}|of\s{1,3}the\s{1,3}|of\s{1,3})?([a-z][a-z\-']*)){1,3}"
)
_CURRENCY_BEFORE = re.compile(r"(?:rmb|cny|¥|\$)\s{0,3}$")
_ORDINAL_BEFORE = re.compile(r"(?:第|no\.|#|top)\s{0,3}$")
_ALREADY = re.compile(r"已|已经|\bhave\b|\bhas\b")
# nearest marker before the number decides; compound words first so 累计新增 reads as a total
_EN_MONTH = (
    r"jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|january|february|march|april|june|july|august|"
    r"september|october|november|december"
)
_MODE_MARK = re.compile(
    # a range of months from January (1-8月 / jan-aug) or the first half is a year-to-date figure
    r"(?P<t>(?:1|一)\s{0,2}[-~至到]\s{0,2}(?:[0-9]{1,2}|[一二三四五六七八九十]{1,2})\s{0,2}月|上半年|前三季度|"
    rf"\bjan(?:uary)?\s{{0,2}}[-~]\s{{0,2}}(?:{_EN_MONTH})\b|"
    r"累计新增|今年新增|今年以来新增|三年新增|年内新增|累计|累积|共计|总计|合计|总共|一共|(?<!公)共(?![同享建])|已达|达到|"
    r"今年|本年|年内|截至|截止|至今|迄今|目前|现已|全年|三年|"
    r"\b(?:so far|to date|in total|total|cumulative|cumulatively|altogether|year to date|ytd|this year|overall|"
    r"now at|reached|up to now)\b)"
    r"|(?P<p>本周|这周|本月|这个月|本次|上周|本季度|近期|\b(?:this week|this month|last week)\b|"
    # a single month (9月已完成3项 / 8月新增 / 12 in august): that month's figure
    r"(?<![0-9\-~至到])(?:1[0-2]|[1-9]|十[一二]?|[一二三四五六七八九])\s{0,2}月份?(?![底末中初前0-9一二三四五六七八九十]|以来)|"
    rf"\bin\s{{1,3}}(?:{_EN_MONTH})\b)"
    r"|(?P<i>新增|又|再|增加|提高了|提高|新开展|新举办|新认定|\b(?:new|added|another|more|additional)\b)"
)
# a number that is a target, a plan or the wrong value being corrected is not an observation
_SKIP_BEFORE = re.compile(
    r"(?:目标|指标|任务数|不少于|要求|全年|每年|年度|总投资|计划投资|投资计划|增长|增幅|参训|参会|参加|参与|到场|走访|调研|不是|而非|并非|人数|人次|还是|"
    r"\btarget(?: of)?|\bgoal(?: of)?|\bnot)"
    r"\s{0,3}(?:为|是|了|约|近|:)?\s{0,3}$"
)
_SKIP_AFTER = re.compile(
    # …任务20亿元的56.3%: the number is the whole a percent is taken of
    r"\s{0,3}的\s{0,2}(?:[0-9]{1,3}(?:\.[0-9]{1,3})?\s{0,2}%|百分之)|"
    r"\s{0,3}(?:的?目标|的?任务|(?:年度|全年|今年)计划|应为|改为|更正为|->|→|\bshould be\b|\btarget\b|"
    r"(?:more\s{1,3})?(?:scheduled|planned|to go|remaining|left)\b|有误|错了|不对|\bwrong\b|\bincorrect\b)"
)
_PLAN_BEFORE = re.compile(
    r"预计|(?<!按)计划|争取|力争|拟|将|目标|有望|安排|准备|打算|"
    r"\bexpect|\bplan|\baim|\btarget|\bwill\b|\bgoing to\b|\bhope"
)

# -------------------------------------------------------------------------------------------- percents
_PCT_RE = re.compile(
    r"(?<![0-9.])(?P<num>[0-9]{1,3}(?:\.[0-9]{1,3})?)\s{0,3}(?:%|percent\b|per\s{0,3}cent\b|pct\b)"
    r"|百分之\s{0,3}(?P<cn>[0-9]{1,3}(?:\.[0-9]+)?|[零〇一二两三四五六七八九十百]{1,6})"
    r"|(?P<range>[一二三四五六七八][二三四五六七八九])\s{0,3}成(?![员立果本功为效绩交熟型品都长不])"
    r"|(?<![0-9])(?P<cheng>10|[1-9]|十|[一二三四五六七八九])\s{0,3}成(?![员立果本功为效绩交熟型品都长不])"
    r"|(?P<word>过半|一半|半数|大半|halfway|half-way|half way|\bhalf\b)"
    r"|(?<![0-9/.])(?P<fa>[0-9]{1,3})\s{0,3}/\s{0,3}(?P<fb>[0-9]{1,3})(?![0-9/.])"
    r"|(?P<cb>[一二三四五六七八九十]|[0-9]{1,3})\s{0,3}分之\s{0,3}(?P<ca>[一二三四五六七八九十]|[0-9]{1,3})"
)
_PCT_WORDS = {"过半": 50, "一半": 50, "半数": 50, "大半": 70, "halfway": 50, "half-way": 50, "half way": 50,
              "half": 50}  # fmt: skip
_NOT_PROGRESS = re.compile(
    r"(?:超额|超出|超过|\bexceed|\bover\b|增长|增幅|同比|环比|下降|提高|提升|降低|占比|比重|占|增加|减少|利率|费率|贴息|比例|增速|满意度|覆盖率|"
    r"\bgrowth\b|\bincrease\b|\bdecrease\b|\brate\b|\bup\b|\bdown\b|\byoy\b|\bshare\b)[^到至达]{0,4}$"
)
# issue 12: what the words before an official percent make of it
_COMPLETION_BEFORE = re.compile(
    r"(?:(?:开工|复工|开、复工|完工|完成|执行|办结|办复|答复|投产|建成|履约)率\s{0,2}(?:为|达到|达|是)?\s{0,2}约?"
    r"|(?:完成|执行)?进度(?:为|达到|达)?"
    r"|(?:完成|为|达到?|实现)[^，,。；;]{0,24}?的"
    r"|(?:完成|已完成|完成了)\s{0,2}(?:约|近)?)\s{0,2}$"
)
_SHARE_BEFORE = re.compile(
    r"(?:占比|比重|占[^，,。；;]{0,14}?(?:总数|总量|总额|总任务|全部项目|承办|立案|项目总数|建议总数|提案总数|目标任务|"
    r"完成投资)?的?|约占|分别占|占)\s{0,2}(?:为|达|约)?\s{0,2}$"
)
_PLAN_SHARE_BEFORE = re.compile(
    r"占[^，,。；;]{0,10}?(?:年度|全年|年|省下达年度)[^，,。；;]{0,8}?(?:计划|目标)[^，,。；;的]{0,6}的?\s{0,2}$"
)
_DONE_IN_SENTENCE = re.compile(r"完成|开工|到位|建成|办理|办复")
# rates of a population or of quality, not of the work: 满意率99.16%, 立案率达92%, 代表委员基本满足率100%
_OTHER_RATE_BEFORE = re.compile(
    r"(?:满意|满足|立案|采纳|合格|知晓|通过|参保|就业|覆盖|达标|好评|知晓)率\s{0,2}(?:为|达到|达|是)?\s{0,2}约?\s{0,2}$"
)
# a part of the items just counted: 132项指标任务中，有93%左右有望…
_PART_OF_BEFORE = re.compile(r"中[，,]?\s{0,2}(?:有|约有|仅有)\s{0,2}$")
_THRESHOLD_AROUND = re.compile(r"(?:低于|高于|超过|不足|不到|在|以|达到或超过)\s{0,2}$")
_THRESHOLD_AFTER = re.compile(r"\s{0,2}(?:到|至|-|~|之间|以上|以下|左右的|的(?:项目|指标))")
_NOT_A_PCT_WORD_BEFORE = re.compile(r"(?:仍有|有|还有|尚有|时间|任务)\s{0,2}$")
_PROGRESS_CTX = re.compile(r"进度|完成|进展|\bprogress\b|\bdone\b|\bcomplete\b|\bcompleted\b|\bfinished\b")
_NOT_BEFORE = re.compile(r"(?:\bnot\b|不是|而非|并非)\s{0,3}$")
_FROM_BEFORE = re.compile(r"(?:从|由|\bfrom\b)\s{0,3}$")

# ------------------------------------------------------------------------------------------- task codes
_CODE = r"[0-9]{1,2}(?:\.[0-9]{1,2}){1,2}"
_NOT_CODE_AFTER = r"(?![0-9.%]|\s{0,3}(?:亿|万|项|家|次|件|个|元|%|percent|倍|天|月|日|号|年|成|前|之前|以前))"
_NOT_CODE_AFTER_RE = re.compile(_NOT_CODE_AFTER)
_CODE_EXPLICIT = re.compile(rf"(?:任务|\btask\b|\bitem\b|#|\bno\.)\s{{0,3}}#?\s{{0,3}}({_CODE}){_NOT_CODE_AFTER}")
_CODE_BRACKET = re.compile(rf"[【\[(（]\s{{0,3}}(?:任务|task)?\s{{0,3}}({_CODE})\s{{0,3}}[】\])）]")
_CODE_START = re.compile(rf"^[^0-9a-z\u4e00-\u9fff]{{0,6}}({_CODE}){_NOT_CODE_AFTER}")

# ---------------------------------------------------------------------------------------------- dates
_FUT_ZH = re.compile(
    r"预计|计划|拟|争取|力争|将于|将在|将|准备|打算|有望|确保|保证|最迟|最晚|期限|截止日期|截止时间|延期至|延期到|延至|"
    r"推迟至|推迟到|推迟|顺延|延期|调整至|调整到|改至|改到|完成时间|时限|节点|目标|能够|能在|能于|可在|可于|会在|会于|"
    r"要在|要于|须在|应于|应在|需在|需于|请于|预期|估计|\bby\b|\bbefore\b|\buntil\b|\btill\b|\bdue\b|\bdeadline\b|"
    r"\bexpect|\beta\b|\bplan|\baim|\btarget|\bwill\b|\bgoing to\b|\bshould\b|\bscheduled\b|\bpostpone|\bpushed\b|"
    r"\bextend|\bextension\b|\bhope\b|\bwithin\b|\bwe'll\b|\bintend"
)
_FUT_SUFFIX = re.compile(
    r"\s{0,3}(?:前|之前|以前|内|之内|以内|底前|左右完成|完成|办结|到位|完工|结束|上线)(?!\s{0,3}[0-9零一二两三四五六七八九十])"
)
_PAST = re.compile(
    r"已|已经|昨天|昨日|前天|上周|上个?月|去年|了(?!解)|\byesterday\b|\blast\b|\bago\b|\bwas\b|\bwere\b|\bheld\b|"
    r"\btook place\b|\bdid\b|\bhappened\b|\bmet\b|\bhad\b"
)
_ASOF = re.compile(r"(?:截至|截止|截止到|截至到|到目前|\bas of\b|\bas at\b|\bsince\b)\s{0,3}$")
_NEAR_BEFORE = re.compile(r"[^，,。；;]{0,4}?(?:前|之前|以前|之内|以内|内)")
_NEG_DEADLINE = re.compile(
    r"完不成|来不及|赶不上|无法完成|不能完成|难以完成|有难度|难度较大|难度大|恐难|"
    r"\bmiss\b|\bwon't make\b|\bcan't make\b"
)
_SINCE_AFTER = re.compile(
    r"\s{0,3}(?:以来|起|开始|之后|以后|后|到目前|至今|进展|情况|工作进展|工作情况|小结|总结|的?目标|任务目标)"
)
_ORIGINAL = re.compile(r"原定|原计划|原来|原本|本来|\boriginally\b|\bwas due\b|\bpreviously\b|\binitially\b")
_PERIOD_WORDS = {"本周", "这周", "本星期", "这个星期", "这星期", "本月", "这个月", "这月", "当月", "今年", "this week",
                 "this month", "today", "今天", "今日"}  # fmt: skip
_SPECIFIC_KINDS = re.compile(
    r"[0-9]|月底|月末|月中|月初|旬|周[一二三四五六日天]|星期|礼拜|下|明|年底|年末|春节|端午|中秋|国庆|元旦|"
    r"五一|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|next|friday|monday|tuesday|"
    r"wednesday|thursday|end|q[1-4]|within|in "
)

# ----------------------------------------------------------------------------------------- help / misc
_HELP_PRE_ZH = re.compile(
    r"需|需要|亟需|急需|(?<!邀)请|恳请|商请|提请|希望|盼|建议|等待|正在等|在等|等|待|依赖|要求|还要|协调|对接"
)
_HELP_POST_ZH = re.compile(
    r"^\s{0,3}(?:的)?\s{0,3}(?:配合|协调|协助|支持|帮助|帮忙|支援|批复|审批|审核|拨付|反馈|回复|确认|会签|给予|牵头协调)"
)
_HELP_EN = re.compile(
    r"\b(?:need|needs|needed|require|requires|required|request|requesting|ask|asking|waiting|awaiting|pending|"
    r"depends|depend|rely|relying|support|help|coordinate|coordination|approval|sign-off|input|cooperation|"
    r"until|confirm|confirms|approve|approves|provide|provides|send|sends|release|releases)\b"
)
_WAIT = re.compile(r"等待|正在等|在等|等候|\bwaiting\b|\bawaiting\b|\bpending\b")
_NO_HELP_PRE = re.compile(
    r"(?:在|经|经过|由|感谢|谢谢|会同|联合|已协调|已经协调|\bthanks to\b|\bwith the help of\b|\bwith\b)\s{0,3}$"
)
_NO_HELP_POST = re.compile(
    r"^\s{0,3}(?:已|已经|已于|均已|都已|牵头(?!协调)|\bhas\b|\bhave\b|\bapproved\b|\bprovided\b)"
)
# the department is the sender (区科委回复：… / 公安分局经侦支队：…), not asked for help
_SENDER_POST = re.compile(r"^[^，,。；;\s:：]{0,8}?(?:回复|反馈|来函|报告|汇报)?\s{0,3}[:：]")
# the department's answer has not come back (…的意见还没回来 / 已发函两次未回复): waiting for it
_PENDING_POST = re.compile(
    r"^[^，,。；;]{0,16}?(?:还没|尚未|仍未|迟迟未|未|没)(?:回来|反馈|回复|答复|出来|批复|确认|盖章|签字)"
)
_PAST_EN_HELP = re.compile(r"\b(?:received|got|thanks|approved|provided|helped|supported)\b")
_WAIT_OBJECT = re.compile(
    r"(?:等待|正在等|在等|等候|尚待|要等|需等|还在等|等着|待|(?:^|(?<=[，,\s还再呢]))等)[^，,。；;!！?？]{0,10}?"
    r"(?:批复|审批|反馈|回复|确认|拨付|签字|审核|答复|意见|资金|企业|市局|上级|下发|通知|数据|评审|审查|盖章|领导|定调|"
    r"结果|公示|批准|同意|决定)"
    r"|(?:还在等|在等着|等着呢|还要等|还得等)\s{0,3}(?=[，,。；;!！?？~]|$)"
    r"|已(?:上)?报[^，,。；;]{0,12}?(?:审议|审批|审核)"
    r"|\b(?:waiting|awaiting|pending)\b[^,.;!?]{0,30}?\b(?:approval|feedback|reply|response|funding|funds|sign-off|"
    r"signoff|signature|confirmation|go-ahead|decision|budget|bureau|department|commission|office|city|company|"
    r"companies|vendor|partner|them)\b"
)
_CORRECTION_ZH = re.compile(
    r"更正|纠正|修正|订正|修改一下|改一下|更改一下|上条有误|上一条有误|刚才说错|说错了|写错了|报错了|填错了|有误|应为|"
    r"(?<!是不是)发错|撤回"
)
_CORRECTION_EN = re.compile(
    r"(?:correction|corrected|typo|i meant|should read|amend|correct:|sorry,? (?:it|that) should|wrong number|"
    r"wrong figure)(?![a-z])"
)


# ------------------------------------------------------------------------------------------ internals
@dataclass(slots=True)
class _Ctx:
    text: str
    norm: str
    cl: Clauses
    today: date
    blocked: list[tuple[int, int]]
    amb: list[Ambiguity]
    date_spans: list[tuple[int, int]]
    evidence: dict[str, str] = field(default_factory=dict)
    words: dict[int, str] = field(default_factory=dict)  # status word at each position
    answers: Mapping[str, str] = field(default_factory=dict)  # the contact's answers (SHARE_ANSWERS, MODE_ANSWERS)
    share_percent: Decimal | None = None


def _is_latin(ch: str) -> bool:
    # word boundaries for English words: a CJK character next to "done" is a boundary, a letter is not
    return "a" <= ch <= "z"


def _overlaps(spans: Sequence[tuple[int, int]], s: int, e: int) -> bool:
    return any(s < b and a < e for a, b in spans)


def _find_all(hay: str, needle: str, limit: int = MAX_HITS) -> list[int]:
    out: list[int] = []
    i = hay.find(needle)
    while i >= 0 and len(out) < limit:
        out.append(i)
        i = hay.find(needle, i + len(needle))
    return out


def _norm_code(code: str) -> str:
    return ".".join(str(int(p)) for p in code.split("."))


@lru_cache(maxsize=64)
def _known_codes(task_codes: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(normalised code, spellings to look for) for every well-formed code; cached per plan."""
    spell: dict[str, set[str]] = {}
    for c in task_codes:
        c = normalise(c).strip()
        if re.fullmatch(_CODE, c):
            spell.setdefault(_norm_code(c), {_norm_code(c)}).add(c)
    return tuple((k, tuple(sorted(v))) for k, v in sorted(spell.items()))


def _task_code(ctx: _Ctx, task_codes: Sequence[str]) -> str | None:
    codes = _known_codes(tuple(task_codes))
    known = {k for k, _ in codes}
    found: list[str] = []
    norm = ctx.norm
    for pat, explicit in ((_CODE_EXPLICIT, True), (_CODE_BRACKET, True), (_CODE_START, False)):
        for i, m in enumerate(pat.finditer(norm)):
            if i >= MAX_HITS:
                break
            code = _norm_code(m.group(1))
            if known and code not in known:
                if explicit:
                    ctx.amb.append(Ambiguity.UNKNOWN_TASK_CODE)
                continue
            ctx.blocked.append(m.span(1))
            found.append(code)
    # a known code written anywhere as its own token also counts (2.1和2.2均已完成)
    for code, spellings in codes:
        for raw in spellings:
            if raw not in norm:
                continue
            for i in _find_all(norm, raw, 8):
                e = i + len(raw)
                if i > 0 and (norm[i - 1].isdigit() or norm[i - 1] == "."):
                    continue
                if _NOT_CODE_AFTER_RE.match(norm, e) is None:
                    continue
                if not _overlaps(ctx.blocked, i, e):
                    ctx.blocked.append((i, e))
                found.append(code)
    distinct = sorted(set(found))
    if len(distinct) > 1:
        ctx.amb.append(Ambiguity.SEVERAL_TASK_CODES)
        return None
    return distinct[0] if distinct else None


def _is_progress_pct(ctx: _Ctx, s: int) -> bool:
    cs, _ = ctx.cl.clause(s)
    return _NOT_PROGRESS.search(ctx.norm[max(cs, s - 10) : s]) is None


def _percents(
    ctx: _Ctx, targets: Sequence[TargetRef], aliases: dict[str, list[tuple[int, int]]]
) -> tuple[Decimal | None, list[Quantity]]:
    norm = ctx.norm
    found: list[tuple[int, int, Decimal]] = []  # (start, end, value as written)
    pct_qty: list[Quantity] = []
    pct_targets = [t for t in targets if t.unit == "%"]
    for i, m in enumerate(_PCT_RE.finditer(norm)):
        if i >= MAX_HITS:
            break
        s, e = m.span()
        if _overlaps(ctx.blocked, s, e):
            continue
        value: Decimal | None = None
        if m.group("num") is not None:
            value = Decimal(m.group("num"))
        elif m.group("cn") is not None:
            value = parse_number(m.group("cn"))
        elif m.group("range") is not None:
            lo, hi = (parse_number(c) for c in m.group("range"))
            if lo is None or hi is None or hi != lo + 1:
                continue
            value = (lo + hi) * 5  # 六七成 → 65: the middle of the range
        elif m.group("cheng") is not None:
            n = parse_number(m.group("cheng"))
            value = None if n is None or n > 10 else n * 10
        elif m.group("word") is not None:
            value = Decimal(_PCT_WORDS[m.group("word")])
        else:
            a_s, b_s = (m.group("fa"), m.group("fb")) if m.group("fa") else (m.group("ca"), m.group("cb"))
            a, b = parse_number(a_s), parse_number(b_s)
            cs, ce = ctx.cl.clause(s)
            tail = norm[e : e + 4]
            if a is None or not b or a > b or re.match(rf"\s{{0,3}}(?:{_MEASURE})", tail):
                continue  # 8/10项 is a quantity, handled there
            if not _PROGRESS_CTX.search(norm[cs:ce]):
                continue
            if any(cs <= a0 and a1 <= s for spans in aliases.values() for a0, a1 in spans):
                continue  # "inspections: 7/10 done" counts items of that target; the quantity pass takes it
            value = a * 100 / b
        if value is None:
            continue
        cs, ce = ctx.cl.clause(s)
        # 仍有过半项目没有开工 / 时间过半任务过半: a part of a population or a schedule verdict, not progress
        if m.group("word") == "过半" and (
            _NOT_A_PCT_WORD_BEFORE.search(norm, cs, s) or re.match(r"\s{0,2}(?:项目|的|企业|单位|以上)", norm[e:])
        ):
            ctx.blocked.append((s, e))
            continue
        # a percent next to the alias of a %-target is that metric's value, not task progress
        tgt = None
        for t in pct_targets:
            if any(cs <= a0 and a1 <= ce for a0, a1 in aliases.get(t.metric, ())):
                tgt = t
                break
        if tgt is not None:
            pct_qty.append(Quantity(tgt.metric, value, "%", "total", (s, e)))
            ctx.blocked.append((s, e))
            continue
        ctx.blocked.append((s, e))
        if not _is_progress_pct(ctx, s) or _NOT_BEFORE.search(norm, max(0, s - 8), s):
            continue
        if m.group("num") is not None:
            before = norm[max(cs, s - 30) : s]
            if _THRESHOLD_AROUND.search(before) or _THRESHOLD_AFTER.match(norm, e):
                continue  # 完成率低于50% / 完成进度在80%到100%之间: a threshold, not a reading
            if _OTHER_RATE_BEFORE.search(before) or _PART_OF_BEFORE.search(norm, max(0, s - 8), s):
                continue  # 满意率99.16% / …中，有93%: a rate of a population or a part of it, not progress
            if _PLAN_SHARE_BEFORE.search(before):
                ss, _ = ctx.cl.sentence(s)
                answer = ctx.answers.get(Ambiguity.SHARE_OR_PROGRESS)
                if answer == "share":
                    continue  # the contact said: only a share of the plan
                if answer != "progress" and not _DONE_IN_SENTENCE.search(norm, ss, s):
                    ctx.amb.append(Ambiguity.SHARE_OR_PROGRESS)  # 占年度计划的30% with nothing done: ask
                    if ctx.share_percent is None:
                        ctx.share_percent = value
                        ctx.evidence["share_or_progress"] = norm[max(cs, s - 12) : e]
                    continue
                ctx.evidence.setdefault("percent", norm[max(cs, s - 12) : e])
            elif _SHARE_BEFORE.search(before) and not _COMPLETION_BEFORE.search(before):
                continue  # 占建议总数的22.8% / 占比5.4%: a share of a population, not progress
            elif _COMPLETION_BEFORE.search(before):
                ctx.evidence.setdefault("percent", norm[max(cs, s - 12) : e])
        if _QUESTION_CLAUSE.match(norm, cs) and norm[s:ce].rstrip().endswith(("?", "？")):
            ctx.amb.append(Ambiguity.QUESTION)  # 进度80%？还是按件数算？
            continue
        found.append(
            (s, e, value if m.group("num") is not None else value.quantize(Decimal(1), rounding=ROUND_HALF_UP))
        )
        ctx.evidence.setdefault("percent", norm[max(cs, s - 12) : e])
    if not found:
        return None, pct_qty
    if len({v for _, _, v in found}) > 1:
        # "从40%提高到60%": drop the starting point
        keep = [f for f in found if not _FROM_BEFORE.search(norm[max(0, f[0] - 5) : f[0]])]
        if keep:
            found = keep
    values = {v for _, _, v in found}
    if len(values) > 1:
        ctx.amb.append(Ambiguity.CONFLICTING_PERCENT)
        return None, pct_qty
    return found[0][2], pct_qty


@lru_cache(maxsize=512)
def _target_words(targets: tuple[TargetRef, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Normalised alias words per metric; cached because the same task's targets come with every reply."""
    out = []
    for t in targets:
        words = {normalise(a).strip() for a in (t.name, *t.aliases)}
        words |= {w[:-1] for w in words if w.isascii() and w.endswith("s") and len(w) > 4 and not w.endswith("ss")}
        out.append((t.metric, tuple(sorted(w for w in words if len(w) >= 2))))
    return tuple(out)


def _alias_index(norm: str, targets: Sequence[TargetRef]) -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = {}
    for metric, words in _target_words(tuple(targets)):
        spans: list[tuple[int, int]] = []
        for na in words:
            for i in _find_all(norm, na):
                e = i + len(na)
                if na.isascii() and (
                    (i > 0 and _is_latin(norm[i - 1])) or (e < len(norm) and _is_latin(norm[e]) and norm[e] != "s")
                ):
                    continue
                spans.append((i, e))
        out[metric] = spans
    return out


def _unit_score(target_unit: str, unit: str | None, money: bool, mult: bool) -> int:
    if target_unit in _MONEY_UNITS:
        return 3 if money else (1 if mult else 0)
    if money or unit is None:
        return 0
    if unit == target_unit:
        return 3
    if unit == "个":
        return 1
    if any(unit in fam and target_unit in fam for fam in _COUNT_FAMILIES):
        return 1
    return 0


def _target_scores(
    ctx: _Ctx,
    targets: Sequence[TargetRef],
    aliases: dict[str, list[tuple[int, int]]],
    s: int,
    e: int,
    end: int,
    unit: str | None,
    money: bool,
    mult: bool,
) -> list[tuple[float, TargetRef]]:
    """Score each target for the number at [s, end): unit fit + the nearest alias word (before it in the
    sentence, or right after it in the same clause)."""
    norm = ctx.norm
    cs, ce = ctx.cl.clause(s)
    ss, _ = ctx.cl.sentence(s)
    bare = unit is None and not money and not mult
    out: list[tuple[float, TargetRef]] = []
    for t in targets:
        us = _unit_score(t.unit, unit, money, mult)
        alias_score = 0.0
        for a0, a1 in aliases.get(t.metric, ()):
            ascii_alias = norm[a0:a1].isascii()
            if a1 <= s and a0 >= ss:  # alias before the number
                gap = s - a1
                if gap > (32 if ascii_alias else 16):
                    continue
                sc = (4.0 if a0 >= cs else 2.0) - gap / (40 if ascii_alias else 20)
            elif a0 >= e and a1 <= ce:  # alias after, same clause only
                gap = max(a0 - end, 0)
                if gap > (16 if ascii_alias else 8):
                    continue
                sc = 4.5 - gap / 20
            else:
                continue
            alias_score = max(alias_score, sc)
        if bare:
            # a bare number needs the target's word right before it (检查：2 / pilot units: 12), or a
            # sentence-level mention when the number is followed by a mode word (…, 8 in total so far)
            if alias_score < 3.0 and not (alias_score > 0 and _BARE_MODE_AFTER.match(norm, end)):
                continue
            us = 2
        elif us == 0:
            continue
        out.append((us + alias_score, t))
    return out


@dataclass(slots=True)
class _Number:
    """A number of the reply and what it counts, as ``_read_number`` reads it from the words around it."""

    s: int  # [s, e): the number itself in the normalised text
    e: int
    tok: str
    value: Decimal  # in the unit said: multipliers applied, money in yuan
    arabic: bool  # 12, 1,200.5
    cn: bool  # 十二, 三点五
    word: bool  # twelve
    cs: int  # [cs, ce): its clause
    ce: int
    end: int = 0  # where the number with its measure word, multiplier or English noun ends
    mw: str | None = None  # the measure word after it (项, 家, 万元 …)
    unit: str | None = None  # what it counts: the measure word, an English noun's unit, or 元 for money
    money: bool = False
    mult: str | None = None  # 万, k, million …, or "cn" for a large Chinese numeral (九亿三千万)
    written_value: Decimal | None = None  # as written: 629.0 (亿元), 53400 (5.34万个)
    written_unit: str | None = None
    fraction: bool = False  # 3/5, 3 of 5
    tail_words: list[tuple[str, int]] = field(default_factory=list)  # English words after it, with their ends

    @property
    def bare(self) -> bool:
        """No unit, currency or multiplier: only a target's word nearby can say what it counts."""
        return self.unit is None and not self.money and not self.mult


def _quantities(ctx: _Ctx, targets: Sequence[TargetRef], aliases: dict[str, list[tuple[int, int]]]) -> list[Quantity]:
    """Observations of the targets. Every number not yet claimed is read with what it counts (``_read_number``);
    one that is no observation (``_not_an_observation``) is blocked; the rest are matched to a target by unit
    and alias word (``_match_targets``) and given a mode (``_quantity``)."""
    out: list[Quantity] = []
    bare_unmatched = False
    target_units = {t.unit for t in targets}
    people_ok = any(u in _PEOPLE for u in target_units)
    for i, m in enumerate(_NUM_RE.finditer(ctx.norm)):
        if i >= MAX_NUMBERS:
            ctx.amb.append(Ambiguity.TOO_MANY_NUMBERS)
            break
        if _overlaps(ctx.blocked, *m.span()):
            continue
        n = _read_number(ctx, m, target_units, people_ok)
        if n is None:
            continue
        if _not_an_observation(ctx, n, targets):
            ctx.blocked.append((n.s, n.end))
            continue
        matched = _match_targets(ctx, targets, aliases, n)
        if matched is None:
            continue
        best, bare = matched
        if bare and not best:
            if _is_unit_missing(targets, n):
                bare_unmatched = True
            continue
        q = _quantity(ctx, targets, n, best)
        if q is None:
            continue
        if out and not q.mode_asked and q.mode != out[-1].mode and _part_of_previous(ctx, n, out[-1]):
            q = replace(q, mode=out[-1].mode)  # 12月份…到位资金6.08亿元，其中省外6.08亿元: the same period's part
        out.append(q)
        ctx.blocked.append((n.s, n.end))
    if bare_unmatched:
        ctx.amb.append(Ambiguity.NUMBER_WITHOUT_UNIT)
    return out


_PART_OF = re.compile(r"\s{0,3}(?:其中|内含|含)")


def _part_of_previous(ctx: _Ctx, n: _Number, prev: Quantity) -> bool:
    """The number opens a 其中 clause of the sentence that holds ``prev`` and says no mode of its own."""
    ss, _ = ctx.cl.sentence(n.s)
    return (
        prev.span[0] >= ss
        and _PART_OF.match(ctx.norm, n.cs) is not None
        and not _has_mode_marker(ctx, n.s, n.end)
    )


def _read_number(ctx: _Ctx, m: re.Match[str], target_units: set[str], people_ok: bool) -> _Number | None:
    """The number ``m`` found, with what it counts (``_read_measure``, ``_read_english_noun``); None when it is
    no count: a zero or the start of a range of months (both blocked), numbering or an ordinal, a duration or
    a date (3天, 2024年), people where no target counts them, a year, a month.day or a Chinese numeral in a word."""
    s, e = m.span()
    tok = m.group()
    cn, word = m.group(2) is not None, m.group(3) is not None
    value = _number_value(ctx, tok, s, e, cn, word)
    if value is None:
        return None
    cs, ce = ctx.cl.clause(s)
    n = _Number(s, e, tok, value, m.group(1) is not None, cn, word, cs, ce)
    if _is_numbering(ctx, n) or not _read_measure(ctx, n, target_units, people_ok) or not _read_english_noun(ctx, n):
        return None
    if _is_word_or_date(ctx, n):
        return None
    return n


def _number_value(ctx: _Ctx, tok: str, s: int, e: int, cn: bool, word: bool) -> Decimal | None:
    if cn and tok[0] not in "零〇一二两三四五六七八九十壹贰叁肆伍陆柒捌玖拾":
        return None
    value = Decimal(EN_WORDS[tok]) if word else parse_number(tok)
    if value is None:
        return None
    if value == 0 or _RANGE_AFTER.match(ctx.norm, e):
        ctx.blocked.append((s, e))
        return None  # a zero is not recorded (无新增 / 活动 0); 1-8月 is a range of months
    return value


def _is_numbering(ctx: _Ctx, n: _Number) -> bool:
    """第3 / no. 3 / 下一 / 3rd, and list numbering ("1、专项行动…" / "2) …")."""
    norm, s, e = ctx.norm, n.s, n.e
    before8 = norm[max(0, s - 8) : s]
    if _ORDINAL_BEFORE.search(before8) or (not n.arabic and _CN_ORDINAL_BEFORE.search(before8)):
        return True
    if n.arabic and re.match(r"(?:st|nd|rd|th)\b", norm[e : e + 3]):
        return True
    return bool(n.arabic and _LIST_MARKER.match(norm, e) and not norm[n.cs : s].strip(" \t*-•·"))


def _read_measure(ctx: _Ctx, n: _Number, target_units: set[str], people_ok: bool) -> bool:
    """The fraction, multiplier, measure word or currency after the number (or a currency before it): sets its
    value, unit and end. False when the word says it counts no target (一次性, 3天, 2024年, 5人 …)."""
    norm = ctx.norm
    suf = _SUFFIX.match(norm, n.e)
    assert suf is not None  # every group is optional
    mw = suf.group("mw")
    if suf.group("mw_tail"):  # 一次性 is an adverb
        return False
    cn_big = n.cn and n.value >= 10_000 and any(c in "万亿" for c in n.tok)
    mult = suf.group("mult")
    if mult and n.word:
        mult = None
    if mult:
        n.value *= _MULT[mult]
    elif cn_big and not mw:
        mult = "cn"  # 九亿三千万: a Chinese amount, like 9.3亿
    n.end = suf.end() if (mult or mw or suf.group("cur") or suf.group("frac")) else n.e
    n.mw, n.mult, n.fraction = mw, mult, bool(suf.group("frac"))
    raw = n.value / _MULT[mult] if mult and mult in _MULT else n.value
    if mw in _MONEY_UNITS or mw in ("美元", "亿美元", "万美元"):
        n.written_value, n.written_unit = raw, (mult if mult in ("万", "亿", "千") else "") + mw
    else:
        n.written_value, n.written_unit = n.value, mw
    if mw in ("美元", "亿美元", "万美元"):
        n.value *= {"美元": 1, "万美元": 10_000, "亿美元": 100_000_000}[mw]
        n.unit = "美元"  # another currency: never counted toward a quota in 元/万元
    elif mw in _MONEY_UNITS:
        n.value *= _MONEY_UNITS[mw]
        n.money = True
        n.unit = "元"
    elif suf.group("cur") or _CURRENCY_BEFORE.search(norm[max(0, n.s - 5) : n.s]):
        n.money = True
        n.unit = "元"
    elif mw:
        if mw in _NON_TARGET_MW and mw not in target_units:
            return False  # 3天, 2024年, 6月: durations and dates, not quantities of a target
        if mw in _PEOPLE and not people_ok:
            return False
        n.unit = mw
    return True


def _read_english_noun(ctx: _Ctx, n: _Number) -> bool:
    """Without a measure word or currency, the first real English word after the number names what is counted
    (12 inspections): sets the unit and end. False when the noun is a duration or people (3 days, 20 people)."""
    if n.mw or n.money:
        return True
    norm, end = ctx.norm, n.end
    tail = _EN_TAIL.match(norm, end)
    if tail is not None and not n.cn:
        n.tail_words = [(w.group(), end + w.end()) for w in re.finditer(r"[a-z][a-z\-']*", norm[end : tail.end()])]
    for w, we in n.tail_words:
        if w in ("more", "new", "additional", "of", "the"):
            continue
        if w in _EN_NOUNS:
            n.unit = _EN_NOUNS[w]
            n.end = we
        break
    return n.unit != "_skip"


def _is_word_or_date(ctx: _Ctx, n: _Number) -> bool:
    if n.cn and not n.mw and not n.mult:
        return True  # a bare Chinese numeral (一是/一下/三年) is a word, not a count
    if n.arabic and n.bare:
        nxt = ctx.norm[n.end : n.end + 1]
        if "." not in n.tok and 1900 <= n.value <= 2100:
            return True  # a year (剑网2025), never a bare count
        if _MONTH_DAY.fullmatch(n.tok) and nxt and "\u4e00" <= nxt <= "\u9fff":
            return True  # 4.26宣传周 / 3.15那会儿: a day of the year
    return False


def _not_an_observation(ctx: _Ctx, n: _Number, targets: Sequence[TargetRef]) -> bool:
    """A question about the figure (noted in the ambiguities), a target value, a plan, a remainder, a difference
    from another period or a starting level (unless a target is a level: its change is asked about), the wrong value
    being corrected; and, when there are targets to count toward, items a problem affects or work applied for or
    ongoing (without targets those are as-of counts of items in a state)."""
    norm, s, end, cs = ctx.norm, n.s, n.end, n.cs
    question = _QUESTION_CLAUSE.match(norm, cs)
    if question and question.end() > s:
        ctx.amb.append(Ambiguity.QUESTION)  # 今年指标是10项还是12项？: a question, not a figure
        return True
    skip_before = _SKIP_BEFORE.search(norm[max(cs, s - 8) : s]) and not _DONE_AFTER.match(norm, end)
    level = any(t.period == "at-date" for t in targets)
    in_state = (
        _STUCK_AFTER.match(norm, end)
        or _ONGOING_AFTER.match(norm, end)
        or _STATE_BEFORE.search(norm[max(cs, s - 8) : s])
    )
    return bool(
        (in_state and targets)
        or skip_before
        or _SKIP_AFTER.match(norm, end)
        or _WHOLE_OF_AFTER.match(norm, end)
        or _APPLIED_BEFORE.search(norm[cs:s])
        or _NEXT_PERIOD.search(norm[cs:s])
        or _NEXT_PERIOD.search(norm, end, n.ce)
        or _is_plan(norm, cs, s)
        or _OTHER_OBJECT_BEFORE.search(norm[max(cs, s - 8) : s])
        or (_DIFFERENCE_BEFORE.search(norm[max(cs, s - 16) : s]) and not level)
        or (_FROM_LEVEL_AFTER.match(norm, end) and _FROM_LEVEL_BEFORE.search(norm[cs:s]))
    )


def _is_plan(norm: str, cs: int, s: int) -> bool:
    """A plan word before the number in its clause (预计完成3项 / 年度计划完成投资410.1亿元), unless the work was done
    to it (完成全年目标任务的有46项) or an actual figure follows it (计划新开项目实际开工150个)."""
    last = None
    for m in _PLAN_BEFORE.finditer(norm, cs, s):
        last = m
    if last is None:
        return False
    if _PLAN_DONE.search(norm, max(cs, last.start() - 8), last.start()):
        return False
    return _ACTUAL_AFTER_PLAN.search(norm, last.end(), s) is None


def _match_targets(
    ctx: _Ctx, targets: Sequence[TargetRef], aliases: dict[str, list[tuple[int, int]]], n: _Number
) -> tuple[list[tuple[float, TargetRef]], bool] | None:
    """The targets the number may count with their scores (``_target_scores``), and whether it counts as bare
    (no unit of its own, or only the generic 个); None when it counts something else (问题3个, 1万 of no money)."""
    norm, s, cs = ctx.norm, n.s, n.cs
    bare = n.bare
    best = _target_scores(ctx, targets, aliases, s, n.e, n.end, n.unit, n.money, bool(n.mult))
    if n.unit == "个" and best and max(sc for sc, _ in best) < 4:
        # 个 is the generic classifier: without the target's word nearby it names nothing
        best = []
        if not _GENERIC_MW_BEFORE.search(norm[max(cs, s - 4) : s]):
            return None  # 问题3个: counts something else
        bare = True
        if len(targets) == 1 and _MODE_MARK.search(norm[max(cs, s - 4) : s]):
            best = [(2.0, targets[0])]  # 新增3个 with one target: nothing else it could count
    if bare and not best and targets and _BARE_MODE_BEFORE.search(norm[cs:s]):
        mentioned = [t for t in targets if aliases.get(t.metric)]
        if len(mentioned) == 1 or len(targets) == 1:
            best = [(2.0, mentioned[0] if mentioned else targets[0])]  # "total is now 47" about the one target
    if n.mult and not n.money and n.unit is None and not any(t.unit in _MONEY_UNITS for _, t in best):
        return None  # 1万 of something that is not money and not a target
    return best, bare


def _is_unit_missing(targets: Sequence[TargetRef], n: _Number) -> bool:
    """A bare number no target claims that looks like a count the contact left the unit off (the bot asks)."""
    if n.word or not (targets and n.arabic and len(n.tok) <= 6 and not 1900 <= n.value <= 2100):
        return False
    return not n.tail_words or n.tail_words[0][0] in _EN_FILLER


def _quantity(
    ctx: _Ctx, targets: Sequence[TargetRef], n: _Number, best: list[tuple[float, TargetRef]]
) -> Quantity | None:
    """The observation of the best-scoring target; of none when there are no targets, or when several fit
    equally (noted in the ambiguities); None when no target fits."""
    if not targets:
        return _unmatched(ctx, n)
    if not best:
        return None
    best.sort(key=lambda x: -x[0])
    top = best[0][0]
    tied = [t for sc, t in best if abs(sc - top) < 1e-9]
    if len(tied) > 1:
        ctx.amb.append(Ambiguity.UNIT_FITS_SEVERAL_TARGETS)
        return _unmatched(ctx, n)
    t = tied[0]
    at_date = t.period == "at-date"
    mode = _mode(ctx, n.s, n.end, n.fraction, at_date, t.period == "cumulative")
    if at_date and mode == "increment" and _LEVEL_CHANGE.search(ctx.norm[n.cs : n.s]):
        ctx.amb.append(Ambiguity.CHANGE_OF_LEVEL)  # +1.5 on a level metric: the bot asks for the level
    elif at_date:
        mode = "total"
    value = _to_target_unit(n.value, n.money or bool(n.mult and t.unit in _MONEY_UNITS), t.unit)
    asked = False
    if mode == "increment" and not _has_mode_marker(ctx, n.s, n.end) and _ASOF_ANYWHERE.search(ctx.norm):
        answer = ctx.answers.get(Ambiguity.TOTAL_OR_INCREMENT)
        if answer in MODE_ANSWERS:
            mode = answer  # the contact said which
        else:
            asked = True
            ctx.amb.append(Ambiguity.TOTAL_OR_INCREMENT)  # 截至9月底… then a bare 3项: so far, or new? the bot asks
    words = ctx.norm[n.s : n.end]
    return Quantity(t.metric, value, t.unit, mode, (n.s, n.end), n.written_value, n.written_unit, words, asked)


# numbers that are durations (前10个月), which session of a meeting (十二届五次会议) or part of a name (“十件实事”)
_NOT_A_COUNT = re.compile(
    r"(?<![0-9０-９一二三四五六七八九十两几.])[0-9０-９一二三四五六七八九十两几]{1,4}\s{0,2}个(?:多|半)?月"
    r"|(?<=届)[一二三四五六七八九十0-9]{1,3}次(?:全体)?会议"  # 十二届五次会议: which session, not how many
    r"|(?<=“)[一二三四五六七八九十百两]{1,3}[件项个大][^”]{0,8}(?=”)"  # “十件实事”: a name
)
_ASOF_ANYWHERE = re.compile(
    r"^\s{0,3}(?:截至|截止|1\s{0,2}[-—~至到]\s{0,2}[0-9]{1,2}\s{0,2}月|上半年|前三季度|今年以来)"
)
_OFFICIAL_UNITS = {"元", "美元", "个", "项", "件", "家", "次", "场", "人次", "平方米", "公顷"}


def _own_before(norm: str, cs: int, s: int) -> str:
    """The clause's words before the number at ``s`` that can be its own: markers before an earlier number belong to
    that number (共38项（其中省级29项: 共 is 38's); a digit of a date such as 9月 or 1-8月 does not cut."""
    before = norm[cs:s]
    for i in range(len(before) - 1, -1, -1):
        nxt = before[i + 1 : i + 2]
        if before[i].isdigit() and nxt not in ("月", "日", "号", "-", "~", "至", "到", ".") and not nxt.isdigit():
            return before[i + 1 :]
    return before


def _has_mode_marker(ctx: _Ctx, s: int, e: int) -> bool:
    """Whether any word (not the default) decides the mode of the number at [s, e)."""
    norm = ctx.norm
    cs, ce = ctx.cl.clause(s)
    ss, _ = ctx.cl.sentence(s)
    before = _own_before(norm, cs, s)
    return bool(
        _MODE_MARK.search(before)
        or _TOTAL_AFTER.search(norm[e : min(ce, e + 24)])
        or _INCR_AFTER.search(norm[e : min(ce, e + 24)])
        or _LEAD_TOTAL.match(norm, ss)
        or _ALREADY.search(before)
    )


def _unmatched(ctx: _Ctx, n: _Number) -> Quantity:
    """The number as said, of no target. In a report that speaks of figures to date (official progress text) a count
    with no marker of its own is an as-of figure (华龙区41个项目，开工39个), not an increment."""
    mode = _mode(ctx, n.s, n.end, n.fraction, False)
    if mode == "increment" and n.unit in _OFFICIAL_UNITS and not n.tail_words and not _has_mode_marker(ctx, n.s, n.end):
        mode = "total"
    return Quantity(
        None, n.value, n.unit or "", mode, (n.s, n.end), n.written_value, n.written_unit, ctx.norm[n.s : n.end]
    )


def _to_target_unit(value: Decimal, money: bool, target_unit: str) -> Decimal:
    if money and target_unit in _MONEY_UNITS:
        return value / _MONEY_UNITS[target_unit]
    return value


_SUM_WORDS = {"共", "共计", "合计", "总共", "一共", "总计"}
_THIS_YEAR = re.compile(r"今年|本年|年内|\bthis year\b")
_PERIOD_BEFORE = re.compile(r"本周|这周|本月|这个月|本季度|\bthis week\b|\bthis month\b")


def _mode(ctx: _Ctx, s: int, e: int, fraction: bool, at_date: bool, cumulative: bool = False) -> str:
    if fraction:
        return "total"
    norm = ctx.norm
    cs, ce = ctx.cl.clause(s)
    ss, _ = ctx.cl.sentence(s)
    if _TO_LEVEL_BEFORE.search(norm, max(cs, s - 48), s):
        return "total"  # 由670件增加到5408件: the level reached
    before = _own_before(norm, cs, s)
    after = norm[e : min(ce, e + 24)]
    t_pos = p_pos = g_pos = -1
    t_word = ""
    for m in _MODE_MARK.finditer(before):
        if m.group("t"):
            if cumulative and _THIS_YEAR.match(m.group()):
                # under a three-year (cumulative) target, 今年/今年新增 is a part of the total: a period figure
                p_pos = m.start()
                continue
            t_pos, t_word = m.start(), m.group()
        elif m.group("p"):
            p_pos = m.start()
        else:
            g_pos = m.start()
    if p_pos > t_pos:
        return "increment"  # 本周/本月 after any scope word: a period figure
    if t_pos >= 0 and t_word in _SUM_WORDS and (p_pos >= 0 or _PERIOD_BEFORE.search(norm, ss, cs + t_pos)):
        return "increment"  # 本月…共3场 / 本月为3家企业办理…，合计4600万元: the sum over the period
    if t_pos >= 0 and g_pos > t_pos:
        return "increment"  # 到目前又完成了2项: the nearest marker decides
    if t_pos >= 0:
        return "total"
    if g_pos >= 0:
        return "increment"
    if _TOTAL_AFTER.search(after):
        return "total"
    if _INCR_AFTER.search(after):
        return "increment"
    # a sentence-leading 截至目前/今年 ("截至目前，累计…") carries over its commas
    lead = _LEAD_TOTAL.match(norm, ss)
    if lead:
        return "increment" if cumulative and _THIS_YEAR.search(lead.group()) else "total"
    if at_date or _ALREADY.search(before):
        return "total"
    return "increment"


def _status(
    ctx: _Ctx, quantities: list[Quantity], percent: Decimal | None, pct_spans: list[tuple[int, int]]
) -> tuple[list[tuple[Status, int, int]], bool]:
    """→ signals (status, strength, position), saw a negated 'done'."""
    norm = ctx.norm
    signals: list[tuple[Status, int, int]] = []
    neg_done = False
    qspans = [q.span for q in quantities] + pct_spans
    # counts no target claims: an official report counting items in a state (已完成24个, 5项已完成) reports it
    no_target_counts = bool(quantities) and not any(q.metric for q in quantities)
    matches: list[tuple[int, int, str, bool]] = []
    for pat, zh in ((_ZH_STATUS_RE, True), (_EN_STATUS_RE, False)):
        for i, m in enumerate(pat.finditer(norm)):
            if i >= MAX_HITS * 2:
                break
            if not zh and m.start() > 0 and (_is_latin(norm[m.start() - 1]) or norm[m.start() - 1] in "0123456789'"):
                continue  # inside a longer English word
            matches.append((m.start(), m.end(), m.group(), zh))
    matches.sort()
    instructions = [m.start() for _, m in zip(range(MAX_HITS), _INSTRUCTION.finditer(norm), strict=False)]
    for ks, ke, word, zh in matches:
        status, strength = (_ZH_MAP if zh else _EN_MAP)[word]
        if status is None:
            continue
        ctx.words.setdefault(ks, word)
        cs, ce = ctx.cl.clause(ks)
        ss, se = ctx.cl.sentence(ks)
        inst = next((i for i in instructions if ss <= i < se), None)
        if inst is not None and status is not Status.DONE and (inst < ks or _RELATIVE_AFTER.match(norm, ke)):
            # 下一步…加快推进 / 进度滞后的事项，要强化督促: an instruction or a plan, not a report (a plan to
            # finish, 下一步：7月底前完成, is read below as a plan on track)
            continue
        if _QUESTION_END.match(norm, ce - 1) if ce > 0 else False:
            ctx.amb.append(Ambiguity.QUESTION)  # 完成了？ — a question back, not a report
            continue
        if status is not Status.ON_TRACK and _HEDGE.search(norm, *ctx.cl.sentence(ks)):
            ctx.amb.append(Ambiguity.UNCERTAIN)  # 已经完成了吧，我问一下同事
            continue
        if status in (Status.BLOCKED, Status.AT_RISK) and _NONE_AFTER.match(norm, ke):
            signals.append((Status.ON_TRACK, WEAK, ks))  # 需协调事项：无
            continue
        pre = norm[max(cs, ks - 8) : ks]
        contrast = _CONTRAST.search(pre)
        if contrast:
            pre = pre[contrast.end() :]
        negated = bool(_NEGATOR.search(pre)) and not word.startswith(("未", "没", "尚未", "还", "暂", "无", "不"))
        if word in (
            "无法推进",
            "无法开展",
            "无法落实",
            "无法完成",
            "不能完成",
            "不能推进",
            "不能按时",
            "不能按期",
            "无法按期",
            "无法按时",
            "不理想",
            "不及预期",
            "不会延期",
            "不会滞后",
            "不延期",
            "不需协调",
            "不需要协调",
            "无需协调",
            "无困难",
            "无问题",
            "无风险",
            "无滞后",
            "没有困难",
            "没有问题",
            "没问题",
            "没有风险",
            "没有滞后",
            "没有延期",
        ):
            negated = False
        if status is Status.DONE:
            if negated:
                neg_done = True
                continue
            post = norm[ke : min(ce, ke + 12)]
            full_pre = norm[cs:ks]
            # a sentence that opens with an as-of date (截至8月底，…全部在规定时限内办复) reports what was done by then
            as_of = _ASOF_LEAD.match(norm, ss) is not None and ss < cs and not _PLAN_WORD.search(full_pre)
            future = _FUTURE_DONE.search(full_pre) and not _PAST_DONE.search(full_pre) and not as_of
            soon = _NUM_SOON.match(post)
            if soon and any(a <= ke + soon.end() - 1 < b for a, b in ctx.date_spans):
                soon = None  # "done by 30/6": the number is the deadline, not a count
            if no_target_counts and not future and _items_which(norm, ke, ce, quantities):
                signals.append((Status.DONE, STRONG, ks))  # 全面完成全年目标任务的有28项: those items are done
                continue
            if _ATTRIBUTE_AFTER.match(norm, ke):
                continue  # 已建成的铁路专线闲置19个月: the done word describes a thing the sentence is about
            if (
                (_QTY_AFTER_DONE.match(post) or soon)
                and (word.startswith("已") or norm[max(cs, ks - 1) : ks] == "已")
                and no_target_counts
                and not future
            ):
                signals.append((Status.DONE, STRONG, ks))  # 已完成24个 (no target counts them): those items are done
                continue
            if _QTY_AFTER_DONE.match(post) or soon:
                if future and "前" in full_pre:
                    signals.append((Status.ON_TRACK, WEAK, ks))  # 10月底前可完成剩余3项: a plan
                continue
            if any(ke <= a and a - ke <= 12 and a < ce for a, _ in qspans):
                if future and "前" in full_pre:
                    signals.append((Status.ON_TRACK, WEAK, ks))  # 10月底前可完成剩余3项: a plan
                continue  # 完成了全年任务的60% / completed 3 inspections
            if any(ke <= a < ce for a, _ in pct_spans):
                continue  # 完成州政府下达任务数65.85亿元的91.7%: the work done is the percent, not a verdict
            whole = _WHOLE.search(norm[max(cs, ks - 6) : ks])
            if not whole and any(b <= ks and b > cs and _counted_before(norm[b:ks]) for _, b in qspans):
                if no_target_counts and _PAST_DONE.search(norm, max(cs, ks - 3), ks) and not future:
                    signals.append((Status.DONE, STRONG, ks))  # 其中5项已完成 (no target counts them): those are done
                continue  # 3项已完成 / 3 inspections done
            if _REMAINDER.search(norm, ke, min(len(norm), ke + 40)):
                signals.append((Status.ON_TRACK, WEAK, ks))  # 完成了，但是还有两家企业复查没做
                continue
            if _SUBSTEP.search(norm[cs:ce]) or _PERIOD_FRAME.search(full_pre):
                signals.append((Status.ON_TRACK, WEAK, ks))  # 初稿已完成 / first batch done: a step, not the task
            elif _EN_FUTURE_POST.match(post):
                signals.append((Status.ON_TRACK, WEAK, ks))
            elif _PAST_DONE.search(full_pre) or norm[ke : ke + 1] == "了" or word.startswith("已") or as_of:
                signals.append((Status.DONE, STRONG, ks))
            elif _FUTURE_DONE.search(full_pre):
                signals.append((Status.ON_TRACK, WEAK, ks))
            else:
                signals.append((Status.DONE, STRONG, ks))
            continue
        if negated:
            if status is Status.ON_TRACK and strength == STRONG:
                signals.append((Status.AT_RISK, STRONG, ks))
            elif status in (Status.AT_RISK, Status.BLOCKED):
                signals.append((Status.ON_TRACK, WEAK, ks))
            continue
        if (
            word in ("已解决", "已经解决")
            and no_target_counts
            and _items_which(norm, ke, ce, quantities)
        ):
            signals.append((Status.DONE, STRONG, ks))  # 已经解决或基本解决的有42件: those items are done
            continue
        if status is Status.NOT_STARTED and _PERIOD_FRAME.search(norm[cs:ks]):
            continue  # 这周没有开展检查: nothing this week, not a task that never started
        signals.append((status, strength, ks))
    for m in _RESOLVED.finditer(norm[:MAX_CHARS]):
        signals = [s for s in signals if not (s[0] in (Status.BLOCKED, Status.AT_RISK) and s[2] < m.start())]
        break
    if percent is not None and percent >= 100 and not _START_RATE.search(ctx.evidence.get("percent", "")):
        signals.append((Status.DONE, STRONG, 0))  # (开工率100% says every item started, not that the work is done)
    elif percent == 0:
        signals.append((Status.NOT_STARTED, WEAK, 0))
    return signals, neg_done


def _items_which(norm: str, s: int, e: int, quantities: Sequence[Quantity]) -> bool:
    """[s, e) goes on to count the items the words before describe (…的有28项 / …的建议363件)."""
    starts = {q.span[0] for q in quantities}
    return any(m.end() - 1 in starts for m in _ITEMS_WHICH.finditer(norm, s, e))


def _counted_before(gap: str) -> bool:
    """The text between a quantity and a done word still describes the counted things (3项已完成 /
    2 random inspections done), not another subject (三项了 剩下的月底前搞定)."""
    if len(gap) <= 24 and re.fullmatch(r"[a-z\s\-']*", gap):
        return True
    return len(gap) <= 10 and not re.search(r"剩|还|再|另|其余|其他|\s", gap.strip())


_SEVERITY = {Status.BLOCKED: 4, Status.AT_RISK: 3, Status.NOT_STARTED: 2, Status.ON_TRACK: 1, Status.DONE: 0}


def _resolve_status(
    ctx: _Ctx, signals: list[tuple[Status, int, int]], neg_done: bool, percent: Decimal | None, expected: date | None
) -> Status | None:
    # an overall verdict (总体进展顺利) decides over details about parts of the work
    overall = [x for x in signals if x[1] == STRONG and _OVERALL.search(ctx.norm, ctx.cl.clause(x[2])[0], x[2])]
    if overall:
        signals = overall
    done_at = [p for s, k, p in signals if s is Status.DONE and k == STRONG]
    if done_at and (percent is None or percent < 100):
        # a part is done while the reply says the rest goes on (场地已落实 + a future date, 贴息资金已落实，恢复
        # 正常推进, 装修已完工 + 预计12月试运行, 总体进度约八成): the task is on track, not done
        done_clauses = {ctx.cl.clause(p) for p in done_at}
        going_on = any(
            s is Status.ON_TRACK and k == STRONG and ctx.cl.clause(p) not in done_clauses for s, k, p in signals
        )
        worse = any(s in (Status.AT_RISK, Status.BLOCKED, Status.NOT_STARTED) and k == STRONG for s, k, _ in signals)
        if not worse and (going_on or (expected is not None and expected > ctx.today) or percent is not None):
            signals = [(Status.ON_TRACK, WEAK, p) if s is Status.DONE else (s, k, p) for s, k, p in signals]
    strong = {s for s, k, _ in signals if k == STRONG}
    weak = {s for s, k, _ in signals if k == WEAK}
    if Status.DONE in strong:
        if strong - {Status.DONE, Status.ON_TRACK} or neg_done:
            ctx.amb.append(Ambiguity.CONFLICTING_STATUS)
            return None
        return Status.DONE
    pool = strong or weak
    if not pool:
        return None
    return max(pool, key=lambda s: _SEVERITY[s])


def _expected_date(ctx: _Ctx, hits: list[DateHit]) -> date | None:
    norm = ctx.norm
    chosen: list[tuple[DateHit, bool]] = []
    for h in hits:
        if h.past_word:
            continue
        cs, ce = ctx.cl.clause(h.start)
        own = norm[h.start : h.end].strip()
        before = norm[cs : h.start]
        after = norm[h.end : ce]
        if _SINCE_AFTER.match(after) or _NEG_DEADLINE.search(norm[cs:ce]):
            continue  # 6月以来 / 6月底完不成: not a date anyone expects to finish by
        own_future = re.search(r"前|内|\bby\b|\bbefore\b|\bwithin\b|\bin\b|\buntil\b|\btill\b", own) is not None
        near_before = _NEAR_BEFORE.match(after) is not None
        if _ASOF.search(before[-6:]) and not near_before:
            continue
        marker = bool(_FUT_ZH.search(before) or _FUT_ZH.search(after[:12])) or own_future or near_before
        if own in _PERIOD_WORDS:
            # 本周/本月/今年 usually frame what was done; only a marker makes them a deadline
            if not marker:
                continue
        elif not marker and not (_FUT_SUFFIX.match(after) and not _PAST.search(before)):
            if _PAST.search(before) or _PAST.search(after[:10]):
                continue
            if not _SPECIFIC_KINDS.search(own) or h.raw_past or h.value <= ctx.today:
                continue
        chosen.append((h, bool(_ORIGINAL.search(before))))
    if not chosen:
        return None
    current = [h for h, orig in chosen if not orig]
    if not current:
        return None  # only the original date was named (原定9月…待定): there is no expected date now
    # several milestones (初稿6月底，全部9月底): the last one is when the task is expected to be done
    return max(h.value for h in current)


@lru_cache(maxsize=64)
def _dept_index(departments: tuple[DepartmentRef, ...]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for d in departments:
        names = {d.name, *d.aliases}
        for n in list(names):
            for prefix in ("上海市松江区", "松江区", "区"):
                if n.startswith(prefix) and len(n) - len(prefix) >= 2:
                    names.add(n[len(prefix) :])
        for n in names:
            nn = normalise(n).strip()
            if len(nn) >= 2:
                out.append((nn, d.code))
    out.sort(key=lambda x: -len(x[0]))
    return out


def _help(ctx: _Ctx, departments: Sequence[DepartmentRef]) -> tuple[list[str], bool]:
    norm = ctx.norm
    taken: list[tuple[int, int]] = []
    codes: list[str] = []
    waiting = False
    for alias, code in _dept_index(tuple(departments)):
        for i in _find_all(norm, alias, 16):
            e = i + len(alias)
            if alias.isascii() and ((i > 0 and _is_latin(norm[i - 1])) or (e < len(norm) and _is_latin(norm[e]))):
                continue
            if _overlaps(taken, i, e):
                continue
            if i > 0 and norm[i - 1] in "市省国" and not alias.startswith(("区", "松江")):
                continue  # 市知识产权局 is the city bureau, not our 区知识产权局
            taken.append((i, e))
            cs, ce = ctx.cl.clause(i)
            pre = norm[max(cs, i - 20) : i]
            post = norm[e : min(ce, e + 20)]
            if _NO_HELP_PRE.search(pre) or _NO_HELP_POST.match(post):
                continue
            line_start = norm.rfind("\n", 0, i) + 1
            if i - line_start <= 8 and _SENDER_POST.match(post):
                continue
            clause = norm[cs:ce]
            waiting_for = False
            if alias.isascii() or not re.search(r"[\u4e00-\u9fff]", clause):
                ok = bool(_HELP_EN.search(clause)) and not _PAST_EN_HELP.search(clause)
            else:
                ok = bool(_HELP_PRE_ZH.search(pre) or _HELP_POST_ZH.match(post) or _HELP_EN.search(clause))
                if _PENDING_POST.match(post):
                    ok = waiting_for = True
            if not ok:
                continue
            if code not in codes:
                codes.append(code)
            if (
                _WAIT.search(pre)
                or _WAIT.search(clause[: i - cs])
                or re.search(r"等\s{0,3}$", pre)
                or (not alias.isascii() and waiting_for)
            ):
                waiting = True
    return codes, waiting


def _confidence(ambiguities: Sequence[str], status_strong: bool, found_any: bool) -> float:
    # A heuristic, not a probability: the bot only compares it with a threshold to decide whether to confirm.
    if not found_any:
        return 0.1
    c = 0.95 if status_strong else 0.8
    c -= 0.25 * min(len(ambiguities), 3)
    return round(max(0.05, min(1.0, c)), 2)


def _parse(
    text: str,
    today: date,
    targets: Sequence[TargetRef],
    departments: Sequence[DepartmentRef],
    task_codes: Sequence[str],
    answers: Mapping[str, str],
) -> ParsedReply:
    truncated = len(text) > MAX_CHARS
    raw = text[:MAX_CHARS]
    norm = normalise(raw)
    ctx = _Ctx(text=raw, norm=norm, cl=Clauses(norm), today=today, blocked=[], amb=[], date_spans=[], answers=answers)
    if truncated:
        ctx.amb.append(Ambiguity.TEXT_TRUNCATED)
    code = _task_code(ctx, task_codes)
    hits = find_dates(norm, today, ctx.blocked)
    ctx.date_spans = [(h.start, h.end) for h in hits]
    ctx.blocked.extend(ctx.date_spans)
    ctx.blocked.extend(m.span() for m in _NOT_A_COUNT.finditer(norm, 0, MAX_CHARS))
    aliases = _alias_index(norm, targets)
    n_blocked = len(ctx.blocked)
    percent, pct_qty = _percents(ctx, targets, aliases)
    pct_spans = ctx.blocked[n_blocked:]
    quantities = pct_qty + _quantities(ctx, targets, aliases)
    quantities.sort(key=lambda q: q.span)
    signals, neg_done = _status(ctx, quantities, percent, pct_spans)
    help_codes, waiting = _help(ctx, departments)
    if help_codes:
        signals.append((Status.BLOCKED, STRONG if waiting else WEAK, 0))
    for m in _WAIT_OBJECT.finditer(norm):
        signals.append((Status.BLOCKED, STRONG, m.start()))
        break
    expected = _expected_date(ctx, hits)
    status = _resolve_status(ctx, signals, neg_done, percent, expected)
    if expected is None and _EXTENSION.search(norm):
        ctx.amb.append(Ambiguity.EXTENSION_WITHOUT_DATE)  # 申请延期 without a new date: the bot asks for one
    is_correction = _CORRECTION_ZH.search(norm) is not None or any(
        m.start() == 0 or not _is_latin(norm[m.start() - 1]) for m in _CORRECTION_EN.finditer(norm)
    )
    # a percent the bot asks about (share_percent) is something to record, once answered
    said = status or percent is not None or ctx.share_percent is not None or quantities or expected or help_codes
    found_any = bool(said or is_correction or neg_done or signals)
    if not found_any:
        ctx.amb.append(Ambiguity.NO_INFORMATION)
    ambiguities = tuple(dict.fromkeys(ctx.amb))
    strong = any(k == STRONG for _, k, _ in signals)
    return ParsedReply(
        status=status,
        percent=percent,
        quantities=tuple(quantities),
        expected_date=expected,
        help_departments=tuple(help_codes),
        task_code=code,
        is_correction=is_correction,
        language=detect_language(norm),
        ambiguities=ambiguities,
        evidence=_evidence(ctx, status, signals, quantities),
        confidence=_confidence(list(ambiguities), strong, found_any),
        share_percent=ctx.share_percent,
    )


def _evidence(
    ctx: _Ctx, status: Status | None, signals: list[tuple[Status, int, int]], quantities: Sequence[Quantity]
) -> dict[str, str]:
    """Which words decided each field: the status word, the percent with its lead-in, each quantity as written."""
    out = dict(ctx.evidence)
    if status is not None:
        for st, _, pos in sorted(signals, key=lambda x: -x[1]):
            if st is status and pos in ctx.words:
                out["status"] = ctx.words[pos]
                break
    if quantities:
        out["quantities"] = "；".join(q.evidence for q in quantities if q.evidence)
    return out


def parse_reply(
    text: str,
    *,
    today: date,
    targets: Sequence[TargetRef] = (),
    departments: Sequence[DepartmentRef] = (),
    task_codes: Sequence[str] = (),
    answers: Mapping[str, str] | None = None,
) -> ParsedReply:
    """Parse one progress reply. Never raises on any string: on an internal error it returns an empty
    result with the ambiguity ``parser_error`` (the property tests assert this never happens).

    ``answers``: what the contact answered to a question about this text, by the ambiguity it settles
    (``{"share_or_progress": "progress"}``, ``{"total_or_increment": "total"}``): the text is read as if it
    had said so, and that ambiguity is not raised again."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    try:
        return _parse(text, today, targets, departments, task_codes, answers or {})
    except Exception:  # a parser bug must not drop a contact's reply; the bot asks instead
        return ParsedReply(None, None, (), None, (), None, False, "zh", (Ambiguity.PARSER_ERROR,), 0.0)
