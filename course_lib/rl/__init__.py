"""Reinforcement learning basics: returns, Bellman equations, exploration, Q-learning, REINFORCE.

An agent sees a state S_t, takes an action A_t, and the environment answers with a reward
R_{t+1} and the next state S_{t+1}. The agent looks for a policy π (a = π(s), or π(a|s)) that
maximises the expected discounted return

    G_t = R_{t+1} + γ R_{t+2} + γ² R_{t+3} + … = Σ_k γᵏ R_{t+k+1},      γ ∈ [0, 1].

This package holds the pieces of ``notebooks/08_rl_basics.ipynb`` and the reference of
``solutions/rl/rl.ipynb``, one lecture-sized module each; every name below is also importable
from ``course_lib.rl`` itself:

- returns, in :mod:`.returns`: :func:`discounted_returns` (every G_t of an episode: the
  reward-to-go) and :func:`episode_weights` (what REINFORCE multiplies log π(a_t|s_t) by);
- known models, in :mod:`.mdp`: :class:`GridWorld` (a small ``gymnasium.Env`` maze with
  P(s'|s,a) and R), :func:`tabular_model` (P and R as tensors, also from FrozenLake's
  ``env.unwrapped.P``) and :func:`layout`;
- dynamic programming, in :mod:`.dynamic_programming`: :func:`policy_evaluation` (iterative),
  :func:`solve_bellman` (the exact linear solve of v = r_π + γ P_π v), :func:`value_iteration`,
  :func:`greedy_policy` and :func:`policy_iteration`;
- exploration, in :mod:`.bandits`: :func:`epsilon_greedy` and the multi-armed bandit
  :func:`bandit_regret`;
- :func:`q_learning` (tabular) and :func:`evaluate_tabular`, in :mod:`.qlearning`;
- REINFORCE, in :mod:`.reinforce`: :func:`reinforce_loss`, :func:`run_episodes`,
  :func:`train_reinforce` and :func:`evaluate_policy` for CartPole, with :func:`cartpole` to
  change the pole length;
- figures, in :mod:`.drawing`: :func:`plot_discounting`, :func:`first_frame` (renders an
  environment) and :func:`draw_gridworld` (arrows for π(s) next to the numbers v_π(s)).

Model convention. A finite MDP with S states and A actions is a pair of tensors:
``P`` (S, A, S) with P[s, a, s'] the probability of moving from s to s' under a *and going on*,
and ``R`` (S, A) the expected reward r(s, a) = E[R_{t+1} | S_t = s, A_t = a]. Transitions that
end the episode are left out of P (its rows may sum to less than one), so a terminal state
is worth 0 and the Bellman equations need no special case for it. A policy is a (S, A) tensor
of probabilities π(a|s), or a (S,) tensor of actions a = π(s). P, R and the values v are
float64 (:data:`DTYPE`).
"""
from __future__ import annotations

from ._checks import DTYPE
from .bandits import bandit_regret, epsilon_greedy
from .drawing import draw_gridworld, first_frame, plot_discounting
from .dynamic_programming import (greedy_policy, policy_evaluation, policy_iteration, policy_matrix,
                                  q_values, solve_bellman, value_iteration)
from .mdp import ACTIONS, MAZE, MOVES, GridWorld, layout, tabular_model
from .qlearning import evaluate_tabular, q_learning
from .reinforce import (ReinforceHistory, Trajectory, cartpole, evaluate_policy, policy_net,
                        reinforce_loss, run_episodes, train_reinforce)
from .returns import discounted_returns, episode_weights

__all__ = [
    "DTYPE",
    # returns
    "discounted_returns", "episode_weights",
    # mdp
    "ACTIONS", "MOVES", "MAZE", "GridWorld", "tabular_model", "layout",
    # dynamic_programming
    "policy_matrix", "q_values", "policy_evaluation", "solve_bellman", "value_iteration",
    "greedy_policy", "policy_iteration",
    # bandits
    "epsilon_greedy", "bandit_regret",
    # qlearning
    "q_learning", "evaluate_tabular",
    # reinforce
    "cartpole", "policy_net", "Trajectory", "run_episodes", "reinforce_loss", "ReinforceHistory",
    "train_reinforce", "evaluate_policy",
    # drawing
    "plot_discounting", "first_frame", "draw_gridworld",
]
