"""Keeps TensorFlow's native start-up lines out of what `mtrec` prints, in its own process and in every process it
starts (Beam workers, benchmark jobs).

TensorFlow 2.21 logs through absl's C++ logging before anything initialises it (`oneDNN custom operations are
on`, `Could not find cuda drivers`, `failed call to cuInit`), and TF_CPP_MIN_LOG_LEVEL no longer reaches those
lines. So file descriptor 2 is replaced by a pipe that child processes inherit; a thread drops the native log lines
from it and passes everything else on to the real stderr as it comes, partial lines (progress bars) included.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

# absl's C++ log line: severity and date (I1130, or I0000 before initialisation, when the time is seconds since
# the epoch), time, thread id, file:line]; absl's one-off notice; and the second line of TensorFlow's CPU feature
# notice (one message over two lines).
NATIVE_LINE = re.compile(rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] |"
                         rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR|"
                         rb"To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler)")
# What a native line's first bytes may look like, up to the end of its file name.
_NATIVE_START = re.compile(rb"^[IWEF](?:\d{0,4}|\d{4} [\d:.]*|\d{4} [\d:.]+ +\d*|\d{4} [\d:.]+ +\d+ [^ \]\r\n]*)$")
_ABSL_NOTICE = b"WARNING: All log messages before absl::InitializeLog()"
_CPU_NOTICE = b"To enable the following instructions: "


def _may_become_native(partial: bytes) -> bool:
    """Whether a line still being written could turn out to be a native log line (so it is held back)."""
    notices = (_ABSL_NOTICE, _CPU_NOTICE)
    return bool(_NATIVE_START.match(partial) or NATIVE_LINE.match(partial)
                or any(notice.startswith(partial) or partial.startswith(notice) for notice in notices))


def filter_lines(data: bytes, pending: bytes) -> tuple[bytes, bytes]:
    """(what to write now, what to hold back) for newly read `data` after the held-back `pending` bytes."""
    buffer, out = pending + data, []
    start = 0
    for match in re.finditer(rb"[\r\n]", buffer):
        line = buffer[start:match.end()]
        if not NATIVE_LINE.match(line):
            out.append(line)
        start = match.end()
    rest = buffer[start:]
    if rest and not _may_become_native(rest):
        out.append(rest)
        rest = b""
    return b"".join(out), rest


def _pump(read_fd: int, write_fd: int) -> None:
    pending = b""
    while True:
        data = os.read(read_fd, 65536)
        if not data:
            break
        shown, pending = filter_lines(data, pending)
        if shown:
            os.write(write_fd, shown)
    if pending and not NATIVE_LINE.match(pending):
        os.write(write_fd, pending)


def hide() -> None:
    """Routes this process's file descriptor 2 (and so its children's) through the filter, until exit."""
    sys.stderr.flush()
    real_stderr = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    pump = threading.Thread(target=_pump, args=(read_fd, real_stderr), name="native-log-filter", daemon=True)
    pump.start()

    def restore() -> None:
        sys.stderr.flush()
        os.dup2(real_stderr, 2)  # closes this process's end of the pipe: the pump ends once children have theirs
        pump.join(timeout=5)

    atexit.register(restore)
