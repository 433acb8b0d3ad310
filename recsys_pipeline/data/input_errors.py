"""How input problems are reported: a bad file is one error naming the file and the cause; a bad
row is quarantined with its file, line and reason."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class InputFileError(ValueError):
    """The input file cannot be used; the message names the file, line and field."""

    def __init__(self, path: Path, message: str, line: int | None = None, field: str | None = None):
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")
        self.path, self.line, self.field = path, line, field


class RowError(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field, self.reason = field, reason


@dataclass(frozen=True)
class QuarantinedRow:
    file: str  # the file's name: the input, or the items file beside it
    line: int  # where the record starts (a quoted line break makes a record span lines)
    field: str
    reason: str
    row_id: str  # the row's raw id cell (user_id; item_id in an items file), cut short
