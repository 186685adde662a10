"""Training curves as a PNG: loss and the validation metric per epoch, stages marked."""
from __future__ import annotations

from pathlib import Path
from typing import List


def training_curves(history: List[dict], path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alage_edge.atomic import write_with

    x = list(range(1, len(history) + 1))
    metric = "val_mae" if any("val_mae" in r for r in history) else "val_accuracy"
    fig, axes = plt.subplots(1, 3 if any("val_box_hit_mean" in r for r in history) else 2, figsize=(12, 3.6))
    axes[0].plot(x, [r["loss"] for r in history], "o-", color="tab:blue")
    axes[0].set_title("training loss")
    axes[1].plot(x, [r.get(metric, float("nan")) for r in history], "o-", color="tab:red")
    axes[1].set_title(metric.replace("val_", "validation ").replace("mae", "MAE (years)"))
    if len(axes) > 2:
        axes[2].plot(x, [r.get("val_box_hit_mean", float("nan")) for r in history], "o-", color="tab:green")
        axes[2].set_title("attention boxes on an age region (IoU>=0.3)")
        axes[2].set_ylim(0, 1)
    stages = [r["stage"] for r in history]
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        start = 0
        for i in range(1, len(stages) + 1):
            if i == len(stages) or stages[i] != stages[start]:
                ax.axvspan(start + 0.5, i + 0.5, alpha=0.07, color=("C0", "C1", "C2")[("global", "attention",
                                                                                       "joint").index(stages[start])])
                ax.text(start + 0.6, ax.get_ylim()[1], stages[start], va="top", fontsize=7, alpha=0.7)
                start = i
    fig.suptitle(title)
    fig.tight_layout()
    out = write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return out
