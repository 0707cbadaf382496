"""Where a benchmark's figures go: NAME.json (the report), NAME.md (its tables) and, with a plot, NAME.png."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from typing import Any


def machine() -> str:
    """The machine a report was measured on, in one line."""
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def target_lines(targets: dict[str, dict[str, Any]]) -> list[str]:
    """The markdown list of a report's targets: each met or NOT met, with the figures it was judged on."""
    lines = ["", "Targets:", ""]
    for name, target in targets.items():
        figures = ", ".join(f"{key} {value:.3f}" if isinstance(value, float) else f"{key} {value}"
                            for key, value in target.items() if key != "met")
        lines.append(f"- {name}: {'met' if target['met'] else 'NOT met'} ({figures})")
    return lines


def save_figure(path: str, columns: int, size: tuple[float, float], draw: Callable[[Any], None]) -> None:
    """Draws a row of `columns` plots, `draw(axes)`, and saves it as a PNG at `path`, whole or not at all."""
    import io

    import matplotlib

    from pipeline.local_runner import write_atomically

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, columns, figsize=size)
    try:
        draw(axes)
        fig.tight_layout()
        image = io.BytesIO()
        fig.savefig(image, dpi=90, format="png")
    finally:
        plt.close(fig)
    write_atomically(path, image.getvalue())


def write(report: dict[str, Any], output_dir: str, name: str, markdown: str,
          plot: Callable[[str], None] | None = None) -> list[str]:
    """Writes the files (each whole or not at all) to `output_dir`; returns their paths. `plot(path)` draws the PNG."""
    from pipeline.local_runner import write_atomically

    os.makedirs(output_dir, exist_ok=True)
    paths = [os.path.join(output_dir, f"{name}.json"), os.path.join(output_dir, f"{name}.md")]
    write_atomically(paths[0], json.dumps(report, indent=2) + "\n")
    write_atomically(paths[1], markdown)
    if plot is not None:
        paths.append(os.path.join(output_dir, f"{name}.png"))
        plot(paths[2])
    return paths
