"""What a reply left unclear: the codes the parser puts in ``ParsedReply.ambiguities``.

A StrEnum, so a code compares equal to the parser's plain string (the parser may emit either). The
conversation asks one question about some of them (``CONFLICTING_STATUS``: which status; a number that fits
no target or several: which target); the others lower the parser's confidence and are kept on the report.
"""

from __future__ import annotations

from enum import StrEnum


class Ambiguity(StrEnum):
    CHANGE_OF_LEVEL = "change_of_level"  # +1.5 on a level metric: the level itself is needed
    CONFLICTING_PERCENT = "conflicting_percent"
    CONFLICTING_STATUS = "conflicting_status"  # done against anything but on track: the bot asks
    EXTENSION_WITHOUT_DATE = "extension_without_date"  # 申请延期 without a new date
    NO_INFORMATION = "no_information"
    NUMBER_WITHOUT_UNIT = "number_without_unit"
    PARSER_ERROR = "parser_error"  # the parser failed on this text (the property tests assert it never does)
    QUESTION = "question"  # 完成了？: a question back, not a report
    SEVERAL_TASK_CODES = "several_task_codes"
    SHARE_OR_PROGRESS = (
        "share_or_progress"  # 占年度计划的30% with nothing said done: a share, or progress? the bot asks
    )
    TEXT_TRUNCATED = "text_truncated"
    TOO_MANY_NUMBERS = "too_many_numbers"
    TOTAL_OR_INCREMENT = "total_or_increment"  # a bare count in a to-date report: so far, or new? the bot asks
    UNCERTAIN = "uncertain"  # 已经完成了吧，我问一下同事
    UNIT_FITS_SEVERAL_TARGETS = "unit_fits_several_targets"
    UNKNOWN_TASK_CODE = "unknown_task_code"
