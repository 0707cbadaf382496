"""Headless Chromium for tests that look at a page: installs Debian's chromium when missing, or skips."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    install = subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium",
                             shell=True, capture_output=True, text=True, timeout=900)
    found = shutil.which("chromium")
    if not found:
        pytest.skip(f"headless Chromium is not installed and could not be installed: {install.stderr[-500:]}")
    return found


def render(path: str, profile_dir: str) -> tuple[str, list[str]]:
    """(the DOM after loading `path`, Chromium's log lines, which carry console messages)."""
    result = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
         f"--user-data-dir={profile_dir}", "--dump-dom", f"file://{path}"],
        capture_output=True, text=True, timeout=120, check=True)
    return result.stdout, result.stderr.splitlines()
