"""The search's picture, ``trials.png``: every trial's metric per epoch.

What a researcher looks for in it: which values won (the best few trials are coloured
and named by their varied values in the legend; the rest are grey), how the curves
compare epoch by epoch (the x-axis is the trial's epoch, whole numbers), and where
trials ended early (a trial ASHA stopped, or one that crashed, ends in a marker at its
last point, so a trial stopped after one epoch is a visible mark rather than a lone dot
hidden under the others).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

PLOT_FILE = "trials.png"
# Trials the legend names, best first.
LEGEND_TRIALS = 5
_OTHERS = "#b0b0b0"


def _format(value: Any) -> str:
    from aegis.tune.console import format_param

    return format_param(value)


def _ended(trial: Any, max_epochs: Optional[int]) -> Optional[str]:
    """``stopped`` or ``failed`` for a trial that ended before its last epoch, else None."""
    if trial.error or getattr(trial, "status", None) == "failed":
        return "failed"
    status = getattr(trial, "status", None)
    last = max(epoch for epoch, _ in trial.history)
    if status in ("stopped", "interrupted") or (max_epochs is not None and last < max_epochs):
        return "stopped"
    return None


def label(trial: Any, keys: Sequence[str], metric: str, mode: str) -> str:
    """``#3 lr=0.01 dropout=0.2: 0.9500``: the number, the varied values (short names), the best value."""
    from aegis.tune.console import short_names

    names = short_names(list(keys))
    values = " ".join(f"{names[k]}={_format(trial.params[k])}" for k in keys if k in trial.params)
    best = trial.best(mode)
    return f"#{trial.number} {values}" + (f": {best:.4f}" if best is not None else "")


def figure(trials: Sequence[Any], metric: str, mode: str, keys: Sequence[str],
           max_epochs: Optional[int] = None) -> Any:
    """The matplotlib Figure (Agg backend, nothing shown); ``trials`` are ``TrialRecord``s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    drawn = [t for t in trials if t.history]
    sign = -1.0 if mode == "max" else 1.0
    ranked = sorted(drawn, key=lambda t: (t.best(mode) is None, sign * (t.best(mode) or 0.0), t.number))
    named = ranked[:LEGEND_TRIALS]
    if max_epochs is None and drawn:
        max_epochs = max(epoch for t in drawn for epoch, _ in t.history)
    colours = plt.get_cmap("tab10").colors

    fig, ax = plt.subplots(figsize=(11, 5.5))
    ended_kinds = set()
    handles: list[Any] = [None] * len(named)
    labels = [label(t, keys, metric, mode) for t in named]
    for trial in reversed(ranked):  # the best drawn last, on top
        epochs, values = zip(*sorted(trial.history))
        rank = named.index(trial) if trial in named else None
        colour = colours[rank % len(colours)] if rank is not None else _OTHERS
        (line,) = ax.plot(epochs, values, color=colour, marker="o", markersize=3,
                          linewidth=2.5 if rank == 0 else 1.2 if rank is not None else 0.8,
                          zorder=3 if rank is not None else 2)
        if rank is not None:
            handles[rank] = line
        ended = _ended(trial, max_epochs)
        if ended:
            ended_kinds.add(ended)
            ax.plot([epochs[-1]], [values[-1]], linestyle="none", marker="x" if ended == "stopped" else "X",
                    markersize=9, markeredgewidth=2, color="black" if ended == "stopped" else "red", zorder=4,
                    gid=f"ended-{trial.number}")
    if len(ranked) > len(named):
        handles.append(Line2D([], [], color=_OTHERS, linewidth=0.8))
        labels.append(f"{len(ranked) - len(named)} other trials")
    if "stopped" in ended_kinds:
        handles.append(Line2D([], [], linestyle="none", marker="x", markersize=9, markeredgewidth=2, color="black"))
        labels.append("stopped early (last epoch)")
    if "failed" in ended_kinds:
        handles.append(Line2D([], [], linestyle="none", marker="X", markersize=9, markeredgewidth=2, color="red"))
        labels.append("crashed (last epoch)")
    if handles:
        ax.legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  title=f"best {len(named)} by {metric}", title_fontsize="small")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if max_epochs:
        ax.set_xlim(0.8, max_epochs + 0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per epoch, {len(trials)} trials ({'higher' if mode == 'max' else 'lower'} is better)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def write_plot(sweep_dir: Path, trials: Sequence[Any], metric: str, mode: str, keys: Sequence[str],
               max_epochs: Optional[int] = None) -> Path:
    import matplotlib.pyplot as plt

    fig = figure(trials, metric, mode, keys, max_epochs)
    path = Path(sweep_dir) / PLOT_FILE
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
