"""TensorFlow's native start-up lines are dropped from mtrec's stderr; everything else passes as it comes."""

from __future__ import annotations

import os
import subprocess
import sys

from pipeline import native_logs

NATIVE = (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
          b"I0000 00:00:1796045312.619220    1830 port.cc:153] oneDNN custom operations are on.\n"
          b"E0000 00:00:1796045341.612063    1943 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n"
          b"I0000 00:00:1796045341.6 1943 cpu_feature_guard.cc:227] This TensorFlow binary is optimized.\n"
          b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
          b"appropriate compiler flags.\n")


def test_native_lines_are_dropped_and_the_rest_kept_in_order():
    data = b"mtrec: input ok\n" + NATIVE + b"Epoch 1/3\n"
    assert native_logs.filter_lines(data, b"") == (b"mtrec: input ok\nEpoch 1/3\n", b"")


def test_a_native_line_split_across_reads_is_still_dropped():
    shown, pending = native_logs.filter_lines(b"ok\nI0000 00:00:1796045312.6 18", b"")
    assert (shown, pending) == (b"ok\n", b"I0000 00:00:1796045312.6 18")
    assert native_logs.filter_lines(b"30 port.cc:153] oneDNN on.\nnext", pending) == (b"next", b"")


def test_a_progress_bar_passes_at_once_without_waiting_for_a_newline():
    assert native_logs.filter_lines(b"\r 12/100 [==>....]", b"") == (b"\r 12/100 [==>....]", b"")


def test_the_mtrec_command_hides_them_in_its_own_and_its_childrens_output_unless_verbose():
    mtrec = os.path.join(os.path.dirname(sys.executable), "mtrec")
    # check-serving imports TensorFlow (native start-up lines), then names the missing directory.
    result = subprocess.run([mtrec, "check-serving", "/nonexistent-model"], capture_output=True)
    assert b"/nonexistent-model" in result.stderr and result.returncode != 0
    assert not [line for line in result.stderr.splitlines(keepends=True) if native_logs.NATIVE_LINE.match(line)]
    script = ("import subprocess, sys; from pipeline import native_logs; native_logs.hide(); "
              "subprocess.run([sys.executable, '-c', 'import tensorflow']); print('child done', file=sys.stderr)")
    child = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert child.stderr.strip() == b"child done"
    unfiltered = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True)
    assert any(native_logs.NATIVE_LINE.match(line) for line in unfiltered.stderr.splitlines(keepends=True))
