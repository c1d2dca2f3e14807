"""RL basics: returns, the Bellman equations, ε-greedy, bandits, Q-learning, REINFORCE."""
import math
from collections import deque

import gymnasium as gym
import matplotlib
import pytest
import torch

from course_lib import rl

matplotlib.use("Agg")


def loop_returns(rewards, gamma):
    """The oracle: G_t = R_{t+1} + γ G_{t+1}, backwards through the episode."""
    out, G = [], 0.0
    for r in reversed(list(rewards)):
        G = r + gamma * G
        out.append(G)
    return torch.tensor(out[::-1], dtype=torch.float64)


def bfs_steps(env: rl.GridWorld) -> torch.Tensor:
    """Fewest steps from every free cell to the goal, by breadth-first search (0 on walls)."""
    grid, ncol = env.desc, env.ncol
    steps = torch.zeros(env.nrow * ncol, dtype=torch.float64)
    goal = "".join(grid).index("G")
    seen, queue = {goal}, deque([goal])
    while queue:
        s = queue.popleft()
        for a in range(4):
            for s2 in range(env.nrow * ncol):  # predecessors: cells that move to s under a
                if s2 not in seen and grid[s2 // ncol][s2 % ncol] not in "#G" and env._move(s2, a) == s:
                    seen.add(s2)
                    steps[s2] = steps[s] + 1
                    queue.append(s2)
    return steps


# ---------------------------------------------------------------------------- returns
@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.99, 1.0])
def test_discounted_returns_match_a_loop(gamma):
    """checks every G_t against the backward recursion G_t = R_{t+1} + γ G_{t+1}."""
    rewards = torch.randn(37, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(rl.discounted_returns(rewards, gamma), loop_returns(rewards, gamma), atol=1e-10)


def test_discounted_returns_of_padded_episodes_and_integers():
    """checks a (N, T) batch row by row, and that integer rewards give floats."""
    batch = torch.tensor([[1.0, 2.0, 3.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    G = rl.discounted_returns(batch, 0.5)
    for row, g in zip(batch, G):
        assert torch.allclose(g.double(), loop_returns(row, 0.5))
    assert rl.discounted_returns([1, 1, 1], 1.0).tolist() == [3.0, 2.0, 1.0]
    assert rl.discounted_returns(torch.zeros(0), 0.9).shape == (0,)


def test_episode_weights_return_versus_reward_to_go():
    """checks that "return" repeats G_0 and "rtg" is G_t."""
    r = [1.0, 0.0, 2.0]
    assert rl.episode_weights(r, 0.5, "return").tolist() == [1.5, 1.5, 1.5]
    assert rl.episode_weights(r, 0.5, "rtg").tolist() == [1.5, 1.0, 2.0]


# ---------------------------------------------------------------------------- the model
def test_gridworld_is_a_gymnasium_env_consistent_with_its_model():
    """checks the gymnasium API, and that stepping follows P: −1 per step, the goal ends it."""
    env = rl.GridWorld()
    s, _ = env.reset(seed=0)
    assert s == env.start and env.observation_space.n == 25 and env.action_space.n == 4
    s, r, terminated, truncated, _ = env.step(2)  # right
    assert (s, r, terminated, truncated) == (1, -1.0, False, False)
    s, *_ = env.step(3)  # up, into the edge: stay
    assert s == 1
    P, R = rl.tabular_model(env)
    assert P.shape == (25, 4, 25) and R.shape == (25, 4)
    assert torch.allclose(P.sum(-1)[0], torch.ones(4, dtype=torch.float64))
    assert P[19, 1].sum() == 0 and R[19, 1] == -1  # the step into G ends the episode
    assert P[24].sum() == 0 and R[24].abs().sum() == 0  # the goal is terminal


def test_gridworld_passes_gymnasiums_env_checker():
    """checks spaces, seeding and step/reset signatures with gymnasium's own checker."""
    from gymnasium.utils.env_checker import check_env

    check_env(rl.GridWorld(slip=0.2), skip_render_check=True)


def test_slippery_gridworld_matches_its_empirical_transitions():
    """checks that sampled moves from one state follow P(s'|s, a) within 4 standard errors."""
    env = rl.GridWorld(slip=0.4)
    P, _ = rl.tabular_model(env)
    env.reset(seed=3)
    counts, n = torch.zeros(25, dtype=torch.float64), 4000
    for _ in range(n):
        env.s = 7  # row 1, column 2
        s, *_ = env.step(1)
        counts[s] += 1
    p = P[7, 1]
    assert torch.all((counts / n - p).abs() <= 4 * (p * (1 - p) / n).sqrt() + 1e-12)


def test_frozenlake_model_gives_the_known_optimal_success_rate():
    """checks the model (P sums to the probability that the episode goes on: 0 from the holes
    and the goal, 1 from the start) and value iteration on it: the optimal success rate is 14/17."""
    env = gym.make("FrozenLake-v1", is_slippery=True)
    P, R = rl.tabular_model(env)
    goes_on = torch.tensor([[sum(p for p, _, _, done in env.unwrapped.P[s][a] if not done)
                             for a in range(4)] for s in range(16)], dtype=P.dtype)
    assert torch.allclose(P.sum(-1), goes_on, atol=1e-12)
    ends = [i for i, c in enumerate("".join(rl.layout(env))) if c in "HG"]
    assert ends == [5, 7, 11, 12, 15] and (P[ends].sum(-1) == 0).all()
    assert torch.allclose(P[0].sum(-1), torch.ones(4, dtype=P.dtype))  # no hole next to S
    v = rl.value_iteration(P, R, 1.0, tol=1e-13)
    assert v[0].item() == pytest.approx(14 / 17, abs=1e-9)
    pi = rl.greedy_policy(P, R, v, 1.0)
    assert rl.policy_evaluation(P, R, pi, 1.0, tol=1e-13)[0].item() == pytest.approx(14 / 17, abs=1e-9)
    assert rl.layout(env)[0] == "SFFF"


# ---------------------------------------------------------------------------- Bellman equations
@pytest.mark.parametrize("gamma, slip", [(0.9, 0.0), (1.0, 0.0), (0.95, 0.3)])
def test_policy_evaluation_iterative_equals_linear_solve(gamma, slip):
    """checks iterative policy evaluation against (I − γP_π)⁻¹ r_π, stochastic and deterministic π."""
    P, R = rl.tabular_model(rl.GridWorld(slip=slip))
    uniform = torch.full((25, 4), 0.25)
    pi = torch.softmax(torch.randn(25, 4, generator=torch.Generator().manual_seed(0)), 1)
    for policy in (uniform, pi):
        exact = rl.solve_bellman(P, R, policy, gamma)
        assert torch.allclose(rl.policy_evaluation(P, R, policy, gamma, tol=1e-12), exact, atol=1e-6)
        r_pi, P_pi = (policy * R).sum(1), torch.einsum("sa,sat->st", policy.double(), P)
        assert torch.allclose(exact, r_pi + gamma * P_pi @ exact, atol=1e-9)  # the Bellman equation


@pytest.mark.parametrize("gamma", [0.9, 1.0])
def test_value_iteration_matches_shortest_paths(gamma):
    """checks v* on the deterministic maze: −Σ_{k<d} γᵏ for the BFS distance d to the goal."""
    env = rl.GridWorld()
    P, R = rl.tabular_model(env)
    d = bfs_steps(env)
    expected = -d if gamma == 1.0 else -(1 - gamma ** d) / (1 - gamma)
    v = rl.value_iteration(P, R, gamma, tol=1e-12)
    assert torch.allclose(v, expected, atol=1e-9)
    assert v[env.start].item() == pytest.approx(-8 if gamma == 1 else -(1 - 0.9 ** 8) / 0.1)


def test_value_iteration_is_the_bellman_optimality_fixed_point():
    """checks v* = max_a q(s, a) and that policy iteration's exact solution agrees (slippery maze)."""
    P, R = rl.tabular_model(rl.GridWorld(slip=0.2))
    v = rl.value_iteration(P, R, 0.95, tol=1e-12)
    assert torch.allclose(v, rl.q_values(P, R, v, 0.95).max(1).values, atol=1e-10)
    v_exact, pi = rl.policy_iteration(P, R, 0.95)
    assert torch.allclose(v, v_exact, atol=1e-8)
    assert torch.equal(rl.greedy_policy(P, R, v, 0.95), pi)
    assert torch.allclose(rl.solve_bellman(P, R, pi, 0.95), v_exact)


def test_bad_inputs_are_clear_errors():
    """checks the messages for γ, shapes, policies and models that make no sense."""
    P, R = rl.tabular_model(rl.GridWorld())
    with pytest.raises(ValueError, match="discount"):
        rl.discounted_returns([1.0], 1.5)
    with pytest.raises(ValueError, match="shape"):
        rl.discounted_returns(torch.zeros(2, 2, 2), 0.5)
    with pytest.raises(ValueError, match="weighting"):
        rl.episode_weights([1.0], 0.5, "advantage")
    with pytest.raises(ValueError, match="probability distribution"):
        rl.policy_evaluation(P, R, torch.ones(25, 4), 0.9)
    with pytest.raises(ValueError, match="actions"):
        rl.policy_evaluation(P, R, torch.full((25,), 4), 0.9)
    with pytest.raises(ValueError, match="shape"):
        rl.value_iteration(P[:, :, :3], R, 0.9)
    with pytest.raises(ValueError, match="singular"):  # always left from the start: never ends
        rl.solve_bellman(P, R, torch.zeros(25, dtype=torch.long), 1.0)
    with pytest.raises(ValueError, match="epsilon"):
        rl.epsilon_greedy(torch.zeros(3), 1.2, 0)
    with pytest.raises(ValueError, match="layout"):
        rl.GridWorld(layout=("S..", ".#"))
    with pytest.raises(ValueError, match="no tabular model"):
        rl.tabular_model(gym.make("CartPole-v1"))


# ---------------------------------------------------------------------------- exploration
@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.5, 1.0])
def test_epsilon_greedy_frequencies(epsilon):
    """checks P(greedy) = 1 − ε + ε/A and P(other) = ε/A within 5 binomial standard errors."""
    q, n = torch.tensor([0.1, 2.0, -1.0, 0.5]), 20_000
    actions = rl.epsilon_greedy(q.expand(n, 4), epsilon, torch.Generator().manual_seed(0))
    assert actions.shape == (n,) and actions.dtype == torch.long
    freq = torch.bincount(actions, minlength=4).double() / n
    p = torch.full((4,), epsilon / 4, dtype=torch.float64)
    p[1] += 1 - epsilon
    assert torch.all((freq - p).abs() <= 5 * (p * (1 - p) / n).sqrt() + 1e-12), (freq, p)
    assert rl.epsilon_greedy(q, epsilon, 0).shape == ()


def test_bandit_regret_grows_slower_with_a_little_exploration():
    """checks that regret is non-decreasing, that ε = 0.1 beats pure exploration (ε = 1) and
    that ε = 1 pays the average gap per step."""
    means = torch.tensor([0.2, 1.0, 0.5, -0.3])
    greedyish = rl.bandit_regret(means, 0.1, steps=500, runs=200, generator=0)
    random = rl.bandit_regret(means, 1.0, steps=500, runs=200, generator=0)
    assert greedyish.shape == (200, 500)
    assert (greedyish.diff(dim=1) >= 0).all()
    assert greedyish[:, -1].mean() < 0.5 * random[:, -1].mean()
    gap = (means.max() - means).mean().item()
    assert random[:, -1].mean().item() / 500 == pytest.approx(gap, rel=0.05)


# ---------------------------------------------------------------------------- Q-learning
def test_q_learning_finds_the_optimal_policy_on_a_chain():
    """checks Q-learning's greedy policy on a deterministic chain against value iteration."""
    env = rl.GridWorld(layout=("S....G",))
    Q, returns = rl.q_learning(env, 300, alpha=0.5, gamma=0.9, epsilon=0.3, seed=0, progress=False)
    P, R = rl.tabular_model(env)
    v = rl.value_iteration(P, R, 0.9, tol=1e-12)
    assert torch.equal(Q.argmax(1)[:5], rl.greedy_policy(P, R, v, 0.9)[:5])
    assert (Q.argmax(1)[:5] == 2).all()  # always right
    assert torch.allclose(Q.max(1).values[:5], v[:5], atol=1e-3)
    assert len(returns) == 300
    assert rl.evaluate_tabular(env, Q.argmax(1), episodes=3).tolist() == [-5.0] * 3


def test_q_learning_is_reproducible():
    """checks that a seed fixes the whole run."""
    env = gym.make("FrozenLake-v1", is_slippery=True)
    a = rl.q_learning(env, 50, epsilon=(1.0, 0.1), seed=4, progress=False)
    b = rl.q_learning(env, 50, epsilon=(1.0, 0.1), seed=4, progress=False)
    assert torch.equal(a[0], b[0]) and a[1] == b[1]


# ---------------------------------------------------------------------------- REINFORCE
def test_reinforce_loss_gradient_matches_the_softmax_score():
    """checks ∇_θ of the loss for a one-state softmax policy: −(1/N) Σ_i Ψ_i (e_{a_i} − π_θ)."""
    theta = torch.tensor([0.3, -1.0, 0.8], dtype=torch.float64, requires_grad=True)
    actions = torch.tensor([0, 2, 2, 1, 0])
    weights = torch.tensor([1.0, -2.0, 0.5, 3.0, 0.0], dtype=torch.float64)
    logp = theta.log_softmax(0)[actions]
    rl.reinforce_loss(logp, weights).backward()
    pi = torch.softmax(theta.detach(), 0)
    score = torch.eye(3, dtype=torch.float64)[actions] - pi  # ∇_θ log π(a_i), (N, 3)
    assert torch.allclose(theta.grad, -(weights[:, None] * score).mean(0))


def test_reinforce_loss_treats_the_weights_as_constants():
    """checks that no gradient reaches Ψ and that mismatched shapes are an error."""
    logp = torch.zeros(4, requires_grad=True)
    weights = torch.ones(4, requires_grad=True)
    rl.reinforce_loss(logp, weights).backward()
    assert weights.grad is None and torch.allclose(logp.grad, torch.full((4,), -0.25))
    with pytest.raises(ValueError, match="shape"):
        rl.reinforce_loss(torch.zeros(3), torch.zeros(4))


def test_train_reinforce_is_seeded_and_records_history():
    """checks that two runs with one seed give the same returns, the history's bookkeeping, and
    evaluate_policy: seeded, and its greedy returns those of episodes played out by hand."""
    runs = []
    for _ in range(2):
        pi = rl.policy_net(hidden=16, seed=0)
        runs.append(rl.train_reinforce(pi, episodes=12, batch=4, progress=False, seed=5))
    assert runs[0].returns == runs[1].returns and len(runs[0].returns) == 12
    assert len(runs[0].losses) == 3
    returns = rl.evaluate_policy(pi, episodes=3, seed=1)
    assert returns.shape == (3,) and torch.equal(returns, rl.evaluate_policy(pi, episodes=3, seed=1))

    def greedy_return(seed):  # one CartPole episode, a_t = argmax π(·|s_t), reset with seed
        env, total, done = rl.cartpole(), 0.0, False
        obs, _ = env.reset(seed=seed)
        while not done:
            with torch.no_grad():
                action = pi(torch.as_tensor(obs, dtype=torch.float32)[None]).argmax().item()
            obs, reward, terminated, truncated, _ = env.step(action)
            total, done = total + reward, terminated or truncated
        return total

    greedy = rl.evaluate_policy(pi, episodes=3, seed=1, greedy=True)
    assert greedy.tolist() == [greedy_return(s) for s in (1, 2, 3)]


def test_episodes_to_target_counts_full_windows():
    """checks the first episode at which the mean of the last `window` returns reaches the target."""
    h = rl.ReinforceHistory(returns=[0.0] * 5 + [10.0] * 5)
    assert h.episodes_to(5.0, window=4) == 7   # episodes 4…7 (1-based): 0, 0, 10, 10
    assert h.episodes_to(10.0, window=4) == 9  # episodes 6…9: all 10
    assert h.episodes_to(11.0, window=4) is None
    assert h.episodes_to(0.0, window=20) is None
    assert math.isclose(h.running_mean(4)[-1].item(), 10.0)


def test_cartpole_pole_length_is_a_new_task():
    """checks that the pole's half-length and its mass-length product change together."""
    env = rl.cartpole(length=1.0)
    assert env.unwrapped.length == 1.0
    assert env.unwrapped.polemass_length == pytest.approx(env.unwrapped.masspole * 1.0)


def test_draw_gridworld_has_a_policy_and_a_value_panel():
    """checks the two panels and one value label per free cell (the goal is labelled "goal")."""
    env = rl.GridWorld()
    P, R = rl.tabular_model(env)
    v = rl.value_iteration(P, R, 1.0)
    fig = rl.draw_gridworld(env, rl.greedy_policy(P, R, v, 1.0), v)
    ax_pi, ax_v = fig.axes
    assert ax_pi.get_title() == "policy π(s)" and ax_v.get_title() == "value v(s)"
    assert len(ax_v.texts) == sum(c != "#" for row in env.desc for c in row)
    matplotlib.pyplot.close(fig)
