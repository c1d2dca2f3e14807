"""A known model: :class:`GridWorld`, a small ``gymnasium.Env`` maze (:data:`MAZE` by default)
whose P(s'|s,a) and R are known, and :func:`tabular_model`, which reads the model of any Toy-Text
environment (GridWorld, FrozenLake, CliffWalking, Taxi) into the tensors P (S, A, S) and R (S, A)
of the model convention in the package docstring (:mod:`course_lib.rl`); :func:`layout` gives the
grid as strings. The actions are numbered as in gymnasium's grid worlds (:data:`ACTIONS`, with the
steps :data:`MOVES`).
"""
from __future__ import annotations

import gymnasium as gym
import torch

from ._checks import DTYPE, _probability

# Gymnasium's grid worlds (FrozenLake, CliffWalking) number the moves this way.
ACTIONS = ("left", "down", "right", "up")
MOVES = ((0, -1), (1, 0), (0, 1), (-1, 0))  # (row, column) step of each action

MAZE = ("S..#.",
        ".#.#.",
        ".#...",
        ".###.",
        "#...G")


class GridWorld(gym.Env):
    """A maze whose model P(s'|s,a), R is known: a ``gymnasium.Env`` with a Toy-Text ``P``.

    Layout characters: ``S`` start, ``.`` free, ``#`` wall, ``G`` goal. The state is the cell
    index s = row · columns + column; the actions are 0 left, 1 down, 2 right, 3 up (as in
    FrozenLake). A move into a wall or off the grid leaves the agent where it is. Every step
    costs ``step_reward`` (−1), so with γ = 1 the value of a state is minus the expected number
    of steps to the goal, as in the lecture's maze. Entering the goal ends the episode.

    With ``slip`` > 0 the agent moves in the intended direction with probability 1 − slip and
    in each of the two perpendicular directions with probability slip/2.

    ``P[s][a]`` is the list of outcomes ``(probability, next state, reward, terminated)``, the
    format of gymnasium's FrozenLake, so :func:`tabular_model` reads both.
    """

    metadata = {"render_modes": []}

    def __init__(self, layout=MAZE, slip: float = 0.0, step_reward: float = -1.0):
        rows = [str(r) for r in layout]
        if not rows or len({len(r) for r in rows}) != 1:
            raise ValueError("layout should be a non-empty list of strings of equal length")
        if "".join(rows).count("S") != 1 or "G" not in "".join(rows):
            raise ValueError("layout needs exactly one start S and at least one goal G")
        if set("".join(rows)) - set("SG.#"):
            raise ValueError(f"layout may only use S, G, . and #, got {sorted(set(''.join(rows)))}")
        self.desc = rows
        self.nrow, self.ncol = len(rows), len(rows[0])
        self.slip = _probability(slip, "slip")
        self.observation_space = gym.spaces.Discrete(self.nrow * self.ncol)
        self.action_space = gym.spaces.Discrete(4)
        self.start = "".join(rows).index("S")
        self.P = {s: {a: self._outcomes(s, a, step_reward) for a in range(4)}
                  for s in range(self.nrow * self.ncol)}
        self.s = self.start

    def _cell(self, s: int) -> str:
        return self.desc[s // self.ncol][s % self.ncol]

    def _move(self, s: int, a: int) -> int:
        r, c = divmod(s, self.ncol)
        r2, c2 = r + MOVES[a][0], c + MOVES[a][1]
        if 0 <= r2 < self.nrow and 0 <= c2 < self.ncol and self.desc[r2][c2] != "#":
            return r2 * self.ncol + c2
        return s

    def _outcomes(self, s: int, a: int, step_reward: float) -> list:
        if self._cell(s) in "G#":  # the episode is over (a wall cell is never entered)
            return [(1.0, s, 0.0, True)]
        chances = {a: 1.0 - self.slip, (a + 1) % 4: self.slip / 2, (a + 3) % 4: self.slip / 2}
        out = {}
        for b, p in chances.items():
            if p > 0:
                s2 = self._move(s, b)
                out[s2] = out.get(s2, 0.0) + p
        return [(p, s2, step_reward, self._cell(s2) == "G") for s2, p in out.items()]

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        self.s = self.start
        return self.s, {}

    def step(self, action: int):
        outcomes = self.P[self.s][int(action)]
        i = self.np_random.choice(len(outcomes), p=[o[0] for o in outcomes])
        _, self.s, reward, terminated = outcomes[i]
        return self.s, reward, terminated, False, {}


def tabular_model(env) -> tuple[torch.Tensor, torch.Tensor]:
    """The model of a Toy-Text environment as tensors: P (S, A, S) and R (S, A), float64.

    Reads ``env.unwrapped.P`` (GridWorld, FrozenLake, CliffWalking, Taxi): P[s, a, s'] sums the
    probabilities of the outcomes that lead to s' and do *not* end the episode; R[s, a] is the
    expected reward Σ p · r over all outcomes. See the package docstring.
    """
    model = getattr(env.unwrapped, "P", None)
    if not isinstance(model, dict):
        raise ValueError(f"{env} has no tabular model env.unwrapped.P (a Toy-Text environment has one)")
    S, A = env.observation_space.n, env.action_space.n
    P, R = torch.zeros(S, A, S, dtype=DTYPE), torch.zeros(S, A, dtype=DTYPE)
    for s in range(S):
        for a in range(A):
            for p, s2, r, terminated in model[s][a]:
                R[s, a] += p * r
                if not terminated:
                    P[s, a, s2] += p
    return P, R


def layout(env) -> list[str]:
    """The grid of a GridWorld or FrozenLake as strings (FrozenLake's holes ``H`` are blocked)."""
    desc = env.unwrapped.desc
    return ["".join(c.decode() if isinstance(c, bytes) else c for c in row) for row in desc]
