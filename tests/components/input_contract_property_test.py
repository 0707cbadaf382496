"""Properties of the CSV reader (hypothesis): what a CSV writer wrote reads back equal, on the line it starts on;
garbage reads, or fails with an InputError naming the file and a line, or quarantines rows naming file and line;
bad numbers are quarantined naming their column."""

from __future__ import annotations

import csv
import io
import os
import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from components.example_gen import input_contract
from models import features

PROPERTY = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
EVENT_HEADER = list(features.DEFAULT_EVENT_COLUMNS)
ITEM_HEADER = list(features.ITEM_COLUMNS)
# Lines as the reader counts them: the file is read with newline="", which ends a line at \r\n, \r or \n.
LINE_BREAK = re.compile(r"\r\n|\r|\n")

# Any Unicode a UTF-8 file can hold, with the characters CSV must quote made likely.
CHARACTER = st.characters(codec="utf-8") | st.sampled_from([",", '"', "\n", "\r", " ", "|", "\t"])
TEXT = st.text(CHARACTER, max_size=12)
VISIBLE = st.characters(codec="utf-8").filter(lambda char: not char.isspace()) | st.sampled_from([",", '"', "|"])


def _required(text: st.SearchStrategy[str], visible: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Text with something besides whitespace (a required field stripped is never empty)."""
    return st.builds(lambda before, char, after: before + char + after, text, visible, text)


REQUIRED_TEXT = _required(TEXT, VISIBLE)
CATEGORY = _required(TEXT.map(lambda text: text.replace(features.CATEGORY_SEPARATOR, "")),
                     VISIBLE.map(lambda char: char.replace(features.CATEGORY_SEPARATOR, "/")))


@pytest.fixture(scope="module")
def directory(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("csv_properties"))


def _csv_text(header: list[str], rows: list[list[str]], quote_all: bool, crlf: bool) -> tuple[str, list[int]]:
    """The file's text and the line each row starts on. (A bare "\n" terminator leaves a "\r" in a field unquoted
    unless every field is quoted, so it is only used with QUOTE_ALL.)"""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL if quote_all or not crlf else csv.QUOTE_MINIMAL,
                        lineterminator="\r\n" if crlf else "\n")
    writer.writerow(header)
    starts = []
    for row in rows:
        starts.append(len(LINE_BREAK.findall(buffer.getvalue())) + 1)
        writer.writerow(row)
    return buffer.getvalue(), starts


def _write(directory: str, name: str, data: str | bytes) -> str:
    path = os.path.join(directory, name)
    with open(path, "wb") as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)
    return path


ITEMS = st.lists(st.tuples(REQUIRED_TEXT, REQUIRED_TEXT, TEXT, st.lists(CATEGORY, max_size=3)),
                 min_size=1, max_size=6, unique_by=lambda item: item[0].strip())


@PROPERTY
@given(items=ITEMS, data=st.data(), quote_all=st.booleans(), crlf=st.booleans(), bom=st.booleans())
def test_written_items_and_events_read_back_equal(directory, items, data, quote_all, crlf, bom):
    item_rows = [[item_id, title, description, features.CATEGORY_SEPARATOR.join(categories)]
                 for item_id, title, description, categories in items]
    events = data.draw(st.lists(st.tuples(REQUIRED_TEXT, st.sampled_from([row[0] for row in item_rows]),
                                          st.integers(0, 2**63 - 1), st.sampled_from([0, 1]),
                                          st.floats(allow_nan=False, allow_infinity=False, width=32)),
                                min_size=1, max_size=6))
    items_text, _ = _csv_text(ITEM_HEADER, item_rows, quote_all, crlf)
    events_text, event_lines = _csv_text(EVENT_HEADER, [[str(value) for value in event] for event in events],
                                         quote_all, crlf)
    bom_mark = "\ufeff" if bom else ""  # as spreadsheet programs write "CSV UTF-8"
    items_path = _write(directory, input_contract.ITEMS_FILE, bom_mark + items_text)
    events_path = _write(directory, input_contract.EVENTS_FILE, bom_mark + events_text)

    expected_items = {
        item_id.strip(): input_contract.Item(item_id.strip(), title.strip(), description.strip(),
                                             tuple(category.strip() for category in categories))
        for item_id, title, description, categories in items}
    assert input_contract.read_items(items_path) == expected_items
    expected_events = [input_contract.Event(user.strip(), item.strip(), timestamp,
                                            {features.CLICKED: clicked, features.RATING: rating})
                       for user, item, timestamp, clicked, rating in events]
    screened = list(input_contract.screen_events(events_path))
    assert [event for _, event in screened] == expected_events
    assert [line for line, _ in screened] == event_lines
    assert input_contract.check_input_dir(directory) == input_contract.InputFiles(len(events), len(items), {})


def _file_level(message: str, path: str) -> bool:
    """Faults of the whole file, which have no line of their own."""
    return any(message.startswith(f"{path}: {fault}") for fault in ("the file is empty", "no items", "no events"))


def _check_garbage(path: str, data: bytes) -> None:
    lines = len(LINE_BREAK.findall(data.decode("utf-8", "replace"))) + 1
    for read in (lambda p: input_contract.screen_items(p)[1], lambda p: list(input_contract.screen_events(p))):
        try:
            entries = read(path)
        except input_contract.InputError as error:
            message = str(error)
            assert message.startswith(path), message
            line = re.search(r"\bline (\d+)", message)
            assert line or _file_level(message, path), message
            if line:
                assert 1 <= int(line.group(1)) <= lines, message
            continue
        for bad in (entry for entry in entries if isinstance(entry, input_contract.BadRow)):
            assert bad.file == os.path.basename(path) and 2 <= bad.line <= lines, bad


# Mostly CSV's own characters, so that quoting, field counts and numbers go wrong in every way.
CSV_ISH = st.text(st.sampled_from(list(',"\r\n \t|0123456789.-+eEnaif_xu') + ["\ufeff", "é", "\x00"]), max_size=60)
HEADERS = st.sampled_from(["", ",".join(EVENT_HEADER) + "\n", ",".join(ITEM_HEADER) + "\n",
                           ",".join(EVENT_HEADER + ["rating"]) + "\n", "item_id,title\r\n"])


@PROPERTY
@given(header=HEADERS, body=CSV_ISH)
def test_csv_like_garbage_reads_or_names_file_and_line(directory, header, body):
    data = (header + body).encode("utf-8")
    _check_garbage(_write(directory, "garbage.csv", data), data)


@PROPERTY
@given(header=HEADERS, body=st.binary(max_size=80))
def test_binary_garbage_reads_or_names_file_and_line(directory, header, body):
    data = header.encode("utf-8") + body
    _check_garbage(_write(directory, "garbage.csv", data), data)


def _random_case(word: str, data: st.DataObject) -> str:
    return "".join(data.draw(st.sampled_from([char.lower(), char.upper()])) for char in word)


NON_FINITE = (st.tuples(st.sampled_from(["", "+", "-"]), st.sampled_from(["nan", "inf", "infinity"]))
              | st.tuples(st.sampled_from(["", "-"]), st.integers(39, 5000).map(lambda exponent: f"1e{exponent}")))
NOT_DECIMAL = st.sampled_from(["1_000", "\u0663", "0x1A", "1.2.3", "e5", ".", "-", "1e", "1,5", "١٢", "½", "1 2",
                               "٣.٥", "+-1", "0b1", "1f", "--1", "1e+-3"])
NOT_INT = st.sampled_from(["1.0", "1e3", "nan", "inf", "0.5", "9" * 30, "-" + "9" * 20, "9" * 5000]) | NOT_DECIMAL


@PROPERTY
@given(data=st.data(), column=st.sampled_from([features.TIMESTAMP, features.CLICKED, features.RATING]),
       padding=st.sampled_from(["", " ", "\t"]))
def test_bad_numbers_name_their_column(directory, data, column, padding):
    if column == features.RATING:
        kind = data.draw(st.sampled_from(["non-finite", "not decimal", "any text"]))
        if kind == "non-finite":
            sign, word = data.draw(NON_FINITE)
            value = sign + (_random_case(word, data) if word.isalpha() else word)
        elif kind == "not decimal":
            value = data.draw(NOT_DECIMAL)
        else:
            value = data.draw(TEXT.filter(lambda text: text.strip() and not _python_float(text)))
    else:
        value = data.draw(NOT_INT | TEXT.filter(lambda text: text.strip() and not _python_int(text)))
    row = {features.USER_ID: "u", features.ITEM_ID: "i", features.TIMESTAMP: "1", features.CLICKED: "1",
           features.RATING: "4", column: padding + value + padding}
    text, _ = _csv_text(EVENT_HEADER, [[row[name] for name in EVENT_HEADER]], quote_all=False, crlf=True)
    path = _write(directory, input_contract.EVENTS_FILE, text)
    [bad] = list(input_contract.screen_events(path))
    assert isinstance(bad, input_contract.BadRow)
    assert bad.describe().startswith(f"{input_contract.EVENTS_FILE}, line 2, column '{column}': "), bad


def _python_float(text: str) -> bool:
    """Whether Python's float() takes the text (a superset of what the contract takes)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _python_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


@PROPERTY
@given(value=st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False, width=32),
       form=st.sampled_from(["str", "exponent", "plus"]))
def test_plain_decimal_ratings_are_read_exactly(directory, value, form):
    text = {"str": str(value), "exponent": f"{float(value):e}", "plus": f"+{value}".replace("+-", "-")}[form]
    assume(abs(float(text)) <= 3.4028234663852886e38)
    rows = [["u", "i", "1", "0", text]]
    path = _write(directory, input_contract.EVENTS_FILE, _csv_text(EVENT_HEADER, rows, False, True)[0])
    [(_, event)] = list(input_contract.screen_events(path))
    assert event.labels[features.RATING] == float(text)
