"""The figures notebooks share: image grids, bars with 95% CIs, curves, conv filters.

Every helper labels its axes, returns the figure, and — given ``name`` — also saves it as
``build/figures/<name>.png`` so the course build collects each notebook's figures.
"""
from __future__ import annotations


import matplotlib.pyplot as plt
import torch

from .results import build_dir


def finish(fig, name: str | None = None):
    """Tighten the layout and, given a name, save as build/figures/<name>.png; return fig."""
    fig.tight_layout()
    if name:
        folder = build_dir() / "figures"
        folder.mkdir(parents=True, exist_ok=True)
        fig.savefig(folder / f"{name}.png", dpi=100)
    return fig


def _label(fig, ax, xlabel: str, ylabel: str, title: str, name: str | None):
    """Axis labels, title, grid and legend of a line plot, then :func:`finish`."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return finish(fig, name)


def show_images(x: torch.Tensor, titles=None, ncols: int = 10, title: str = "",
                name: str | None = None):
    """A grid of images; x: (n, 1, H, W) or (n, H, W), values in [0, 1]."""
    x = x.detach().cpu().reshape(len(x), *x.shape[-2:])
    nrows = (len(x) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.1 * ncols, 1.2 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(x):
            ax.imshow(x[i].numpy(), cmap="gray_r", vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
    fig.suptitle(title)
    return finish(fig, name)


def bars(names, means, cis, ylabel: str, title: str = "", name: str | None = None):
    """Horizontal bars with 95% confidence intervals, one per method."""
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(names) + 1))
    ax.barh(range(len(names)), means, xerr=cis, color="tab:blue", alpha=0.8, capsize=3)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return finish(fig, name)


def curves(x, series: dict, xlabel: str, ylabel: str, title: str = "", logx: bool = False,
           name: str | None = None):
    """One line per series, each ``label → (means, cis)`` over the same x values."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (means, cis) in series.items():
        means, cis = torch.as_tensor(means), torch.as_tensor(cis)
        ax.plot(x, means, marker="o", label=label)
        ax.fill_between(x, means - cis, means + cis, alpha=0.2)
    if logx:
        ax.set_xscale("log")
    return _label(fig, ax, xlabel, ylabel, title, name)


def filters(weights: dict, title: str = "", name: str | None = None):
    """First-layer conv filters side by side; weights: label → tensor (out, 1, k, k)."""
    fig, axes = plt.subplots(len(weights), 1, figsize=(8, 1.3 * len(weights)), squeeze=False)
    for ax, (label, w) in zip(axes[:, 0], weights.items()):
        w = w.detach().cpu()[:, 0]  # (out, k, k)
        w = (w - w.amin((1, 2), keepdim=True)) / (w.amax((1, 2), keepdim=True)
                                                  - w.amin((1, 2), keepdim=True) + 1e-8)
        k = w.shape[-1]
        strip = torch.ones(k, len(w) * (k + 1))
        for i, f in enumerate(w):
            strip[:, i * (k + 1): i * (k + 1) + k] = f
        ax.imshow(strip.numpy(), cmap="gray")
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    return finish(fig, name)


def running_mean(values, window: int) -> torch.Tensor:
    """Mean of each run of ``window`` consecutive values (shorter at the start)."""
    v = torch.as_tensor(list(values), dtype=torch.float64)
    c = torch.cat([torch.zeros(1, dtype=torch.float64), v.cumsum(0)])  # c[i] = v[0] + … + v[i−1]
    end = torch.arange(1, len(v) + 1)
    start = (end - window).clamp(min=0)
    return (c[end] - c[start]) / (end - start)


def traces(series: dict, xlabel: str, ylabel: str, title: str = "", smooth: int = 1,
           hline: float | None = None, hline_label: str = "", name: str | None = None):
    """One line per series, each ``label → (x, y)`` with its own x values (e.g. training steps).

    ``smooth`` plots the running mean of that many points; ``hline`` draws a dashed reference
    line (e.g. the loss of chance, ln N).
    """
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (x, y) in series.items():
        ax.plot(list(x), running_mean(y, smooth).tolist(), label=label)
    if hline is not None:
        ax.axhline(hline, color="gray", linestyle="--", label=hline_label or None)
    return _label(fig, ax, xlabel, ylabel, title, name)
