"""The figures of notebook 08: the weights γᵏ and the returns G_t of a reward sequence for
several discounts (:func:`plot_discounting`), one rendered frame of an environment
(:func:`first_frame`), and a grid world's policy π(s) next to its values v_π(s)
(:func:`draw_gridworld`).
"""
from __future__ import annotations

import os

import gymnasium as gym
import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import seeding
from ..plots import finish
from ._checks import DTYPE
from .dynamic_programming import policy_matrix
from .mdp import MOVES, layout
from .returns import discounted_returns


def plot_discounting(rewards, gammas, title: str = "", name: str | None = None):
    """Two panels for each γ: the weights γᵏ of the future rewards, and the returns G_t.

    Args:
        rewards: R_1 … R_T of one episode, shape (T,).
        gammas: the discounts to compare (one line each).
    """
    rewards = torch.as_tensor(rewards, dtype=DTYPE)
    T = len(rewards)
    fig, (ax_w, ax_g) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_g.bar(range(T), rewards.numpy(), color="0.8", label="reward $R_{t+1}$")
    for gamma in gammas:
        ax_w.plot(range(T), [gamma ** k for k in range(T)], marker="o", ms=3, label=f"$\\gamma$ = {gamma:g}")
        ax_g.plot(range(T), discounted_returns(rewards, gamma).numpy(), marker="o", ms=3,
                  label=f"$G_t$, $\\gamma$ = {gamma:g}")
    ax_w.set(xlabel="steps ahead k", ylabel="weight $\\gamma^k$ of $R_{t+k+1}$", title="How much a later reward counts")
    ax_g.set(xlabel="time step t", ylabel="return $G_t$", title="Returns of the reward sequence")
    for ax in (ax_w, ax_g):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return finish(fig, name)


def first_frame(env_id: str = "CartPole-v1", seed: int = 0):
    """One rendered frame (H, W, 3) of ``env_id`` right after ``reset(seed=seed)``."""
    # rgb_array needs no window; the dummy video driver keeps SDL from looking for a display
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=seeding.seed(seed))
    frame = env.render()
    env.close()
    return frame


def draw_gridworld(env, pi, v, title: str = "", decimals: int = 1, name: str | None = None):
    """Two panels, as in the lecture: arrows for π(s) on the left, the numbers v_π(s) on the right.

    Args:
        env: a GridWorld or FrozenLake (any env with a ``desc`` grid).
        pi: actions π(s), shape (S,), or probabilities π(a|s), shape (S, A) (one arrow per action,
            as long as its probability).
        v: v_π(s), shape (S,).
    """
    grid = layout(env)
    nrow, ncol = len(grid), len(grid[0])
    pi = policy_matrix(pi, nrow * ncol, 4)
    v = torch.as_tensor(v, dtype=DTYPE).reshape(nrow, ncol)
    blocked = np.array([[c in "#H" for c in row] for row in grid])
    goal = np.array([[c == "G" for c in row] for row in grid])
    fig, (ax_pi, ax_v) = plt.subplots(1, 2, figsize=(2 * 0.9 * ncol + 1.5, 0.9 * nrow + 0.8))
    shown = np.ma.masked_array(v.numpy(), blocked | goal)  # a terminal goal is worth 0: no colour
    ax_v.imshow(shown, cmap="RdYlGn", vmin=float(shown.min()), vmax=float(shown.max()) + 1e-9)
    ax_pi.imshow(np.where(blocked, 0.25, 1.0), cmap="gray", vmin=0, vmax=1)
    for r in range(nrow):
        for c in range(ncol):
            cell, s = grid[r][c], r * ncol + c
            if cell in "#H":
                ax_v.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, color="0.25"))
                continue
            if cell in "SG":
                ax_pi.text(c - 0.4, r - 0.28, cell, fontsize=9, weight="bold", color="tab:green")
            if cell == "G":
                ax_v.text(c, r, "goal", ha="center", va="center", fontsize=9, color="tab:green")
                continue
            ax_v.text(c, r, f"{v[r, c]:.{decimals}f}", ha="center", va="center", fontsize=9)
            for a, (dr, dc) in enumerate(MOVES):
                p = float(pi[s, a])
                if p > 1e-6:  # an arrow from the centre, as long as π(a|s)
                    length = 0.12 + 0.28 * p
                    ax_pi.arrow(c, r, length * dc, length * dr, head_width=0.1, head_length=0.08,
                                length_includes_head=True, color="tab:blue")
    for ax, label in [(ax_pi, "policy π(s)"), (ax_v, "value v(s)")]:
        ax.set_xticks(range(ncol))
        ax.set_yticks(range(nrow))
        ax.set_xlabel("column")
        ax.set_ylabel("row")
        ax.set_title(label)
    fig.suptitle(title)
    return finish(fig, name)
