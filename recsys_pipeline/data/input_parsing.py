"""``parse_input``: the input file parsed in whichever of the two formats its header names
(``input_formats.py`` describes both), its quarantine checked, titles from an items file added.
It sits apart from the formats' shared rules, which both parsers import, so that nothing imports
in a circle."""

from __future__ import annotations

from pathlib import Path

from recsys_pipeline.data.input_csv import parse_sequences_csv
from recsys_pipeline.data.input_errors import InputFileError
from recsys_pipeline.data.input_formats import (
    LOG_COLUMNS,
    SEQUENCE_COLUMNS,
    ParsedSequences,
    add_item_titles,
    check_quarantine,
    header_of,
    missing_columns_error,
)
from recsys_pipeline.data.input_streams import DECOMPRESSION_ERRORS, layout_of
from recsys_pipeline.data.interaction_log import parse_interaction_log


def parse_input(
    path: Path, max_quarantine_fraction: float = 0.1, items_file: Path | None = None
) -> ParsedSequences:
    """Parse the input in whichever format its header names; titles from ``items_file``
    (``item_id,title``) win over the input's own."""
    path = Path(path)
    layout = layout_of(path)
    try:
        names = header_of(path, layout)
        if all(name in names for name in LOG_COLUMNS):
            parsed = parse_interaction_log(path, layout, names)
        elif all(name in names for name in SEQUENCE_COLUMNS):
            parsed = parse_sequences_csv(path, layout)
        else:
            raise missing_columns_error(path, names)
    except UnicodeDecodeError as exc:  # surrogateescape cannot keep every bad UTF-16/32 unit
        raise InputFileError(path, f"the file is not valid {layout.encoding}: {exc}") from exc
    except DECOMPRESSION_ERRORS as exc:
        if layout.compression is None:
            raise
        raise InputFileError(path, f"the {layout.compression} data is corrupt: {exc}") from exc
    check_quarantine(path, parsed, max_quarantine_fraction)
    if items_file is not None:
        add_item_titles(parsed, Path(items_file), max_quarantine_fraction)
    return parsed
