"""The report's PNG plots, drawn with matplotlib when it is installed."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from reporting.text import label

COLORS = {
    "ours_cli": "#1f77b4",
    "ours_inproc": "#17becf",
    "go_elect": "#2ca02c",
    "go_lock": "#2ca02c",
    "py_etcd3": "#ff7f0e",
    "ours": "#1f77b4",
    "bare": "#7f7f7f",
    "bare_dm": "#bcbd22",
}


class Plotter:
    """matplotlib if available; every method returns a Markdown image line or ''."""

    def __init__(self, out: Path, report_path: Path) -> None:
        self.out = out
        self.report_dir = report_path.parent
        self.note: str | None = None
        self.plt: Any = None
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            self.plt = plt
        except ImportError:
            self.note = (
                "matplotlib is not installed, so the plots were skipped "
                "(`pip install matplotlib` and re-run, or `run.py --render-only`)."
            )

    def save(self, fig: Any, name: str, alt: str) -> str:
        path = self.out / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        self.plt.close(fig)
        rel = os.path.relpath(path, self.report_dir)
        return f"![{alt}]({rel})"

    def cdf(self, series: dict[str, list[float]], name: str, title: str, xlabel: str) -> str:
        if self.plt is None or not any(series.values()):
            return ""
        fig, ax = self.plt.subplots(figsize=(7.5, 4))
        for key, values in series.items():
            if not values:
                continue
            data = sorted(v * 1000 for v in values)
            ys = [(i + 1) / len(data) for i in range(len(data))]
            ax.step(
                data, ys, where="post", label=f"{label(key)} (n={len(data)})", color=COLORS.get(key)
            )
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("fraction of trials ≤ x")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        return self.save(fig, name, title)

    def strips(
        self,
        panels: list[tuple[str, dict[str, list[float]]]],
        name: str,
        title: str,
        ylabel: str,
        hline: float | None = None,
    ) -> str:
        if self.plt is None or not any(any(p.values()) for _, p in panels):
            return ""
        rng = random.Random(1)
        fig, axes = self.plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
        for ax, (panel_title, series) in zip(axes[0], panels, strict=True):
            keys = [k for k, v in series.items() if v]
            data = [series[k] for k in keys]
            if data:
                ax.boxplot(data, showfliers=False, widths=0.5)
                for i, values in enumerate(data, start=1):
                    xs = [i + rng.uniform(-0.15, 0.15) for _ in values]
                    ax.scatter(xs, values, s=12, alpha=0.6, color=COLORS.get(keys[i - 1]))
                ax.set_xticks(range(1, len(keys) + 1))
                ax.set_xticklabels([label(k).replace(" (", "\n(") for k in keys], fontsize=8)
            if hline is not None:
                ax.axhline(hline, color="red", linestyle="--", linewidth=1)
            ax.set_title(panel_title)
            ax.set_ylabel(ylabel)
            ax.grid(True, axis="y", alpha=0.3)
        fig.suptitle(title)
        return self.save(fig, name, title)

    def bars(
        self,
        groups: list[str],
        series: dict[str, list[float]],
        name: str,
        title: str,
        ylabel: str,
        log: bool = False,
    ) -> str:
        if self.plt is None or not groups:
            return ""
        fig, ax = self.plt.subplots(figsize=(max(6.0, 1.3 * len(groups) + 2), 4))
        width = 0.8 / max(1, len(series))
        for i, (key, values) in enumerate(series.items()):
            xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
            ax.bar(xs, values, width=width, label=label(key), color=COLORS.get(key))
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups, fontsize=8)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
        return self.save(fig, name, title)
