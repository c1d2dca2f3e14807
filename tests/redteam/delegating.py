"""Delegating students: answer cells that hand each part's work to the course's own code.

``DELEGATING[assignment][grade_id]`` is the source of an answer cell that a dishonest student
could submit: it defines what the part asks for (the release stub's name and signature) but
gets the work done by a course function or class that the assignment's ``own_work.toml``
(``solutions/<assignment>/own_work.toml``) lists for that part — by calling, aliasing,
subclassing, wrapping or re-importing it, adapting arguments and results so that the tests
pass. The spellings vary on purpose: ``from … import … as …``, a re-import under the part's own
name or through a package that re-exports it, ``import … as …`` with an attribute call, an
alias assignment, a lambda, a subclass, a call through the setup cell's module alias, and
wrappers that patch a course module for the length of one call.

Undetected, these cells earn (nearly) all the points of their parts: each of them was run with
the hidden tests restored. A part whose ``own_work.toml`` list is empty has no course
implementation to delegate to and no entry here: ``black_box``'s hand-graded ``analysis``,
``maml_protonets``' ``init_alpha`` and ``transfer``'s ``fine_tune``, ``linear_probe`` and
``importance_weights`` (``course_lib.importance.density_ratio`` estimates the ratio from
samples, not from p(t | x), so no cell can pass that part's tests through it).
"""
from __future__ import annotations

import textwrap


def _cell(source: str) -> str:
    """An answer cell's source: ``source`` without its common indentation."""
    return textwrap.dedent(source).strip() + "\n"


_BAYES = {
    "posterior_mean_var": _cell("""
        from course_lib.bayes import posterior as posterior_mean_var  # noqa: F401
    """),
    "gaussian_entropy": _cell("""
        import course_lib.bayes as cb

        gaussian_entropy = lambda variance: cb.gaussian_entropy(variance)  # noqa: E731
    """),
    "empirical_bayes": _cell("""
        def empirical_bayes(y: torch.Tensor, sigma2: float):
            \"\"\"θ̂ and τ̂² of the prior 𝒩(θ, τ²) by maximum marginal likelihood.\"\"\"
            from course_lib.bayes import empirical_bayes as course_empirical_bayes

            return course_empirical_bayes(y, sigma2)
    """),
}

_BLACK_BOX = {
    "to_sequence": _cell("""
        def to_sequence(support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor,
                        query_y: torch.Tensor, generator: torch.Generator) -> tuple:
            \"\"\"An N-way K-shot episode as one sequence of T = N·K + Q positions.\"\"\"
            s = bb.to_sequence(support_x, support_y, query_x, query_y, generator=generator)
            return s.x, s.labels, s.query_y
    """),
    "mann_forward": _cell("""
        from course_lib.blackbox import BlackBox, LSTMReader


        def mann_forward(encoder: nn.Module, lstm: nn.LSTM, out: nn.Linear, x: torch.Tensor,
                         labels: torch.Tensor) -> torch.Tensor:
            \"\"\"The MANN of CS330's homework 1, read by the course's sequential LSTM reader.\"\"\"
            reader = LSTMReader(1, labels.shape[-1], hidden=lstm.hidden_size,
                                layers=lstm.num_layers, sequential=True)
            reader.lstm, reader.head = lstm, out  # the given weights, in the course's reader
            return BlackBox(encoder, reader)(x, labels, 1)
    """),
    "query_loss": _cell("""
        query_loss = bb.query_loss
    """),
    "meta_train": _cell("""
        def meta_train(model: nn.Module, sampler: EpisodeSampler, steps: int, beta: float = 1e-3,
                       meta_batch: int = 16, seed: int = 0) -> list[float]:
            \"\"\"Meta-train a black box f_θ by Adam on the query loss.\"\"\"
            history = bb.meta_train(model, sampler, steps, beta, meta_batch, seed, progress=False)
            return history.loss
    """),
}

_CONTINUAL = {
    "reservoir_add": _cell("""
        from course_lib.continual.memory import ReservoirBuffer


        def reservoir_add(memory: list, seen: int, item, capacity: int,
                          generator: torch.Generator) -> int:
            \"\"\"Offer the n-th item of a stream to a reservoir memory of M = capacity slots.\"\"\"
            buffer = ReservoirBuffer(capacity)  # refuses capacity < 1
            if len(memory) != min(seen, capacity):
                raise ValueError(f"{len(memory)} items in memory after {seen} offered")
            buffer.seen, buffer.g = seen, generator  # the course's buffer draws j for us
            buffer.add(torch.zeros(1, 1), torch.ones(1, dtype=torch.long))
            slot = buffer.y.nonzero().flatten()  # where the course put the item, if anywhere
            if len(slot) and seen < capacity:
                memory.append(item)
            elif len(slot):
                memory[int(slot[0])] = item
            return buffer.seen
    """),
    "diagonal_fisher": _cell("""
        from course_lib.continual import diagonal_fisher as course_fisher


        def diagonal_fisher(model: nn.Module, x: torch.Tensor,
                            y: torch.Tensor) -> dict[str, torch.Tensor]:
            \"\"\"The diagonal of the empirical Fisher information at the model's weights.\"\"\"
            return course_fisher(model, x, y)
    """),
    "ewc_penalty": _cell("""
        import course_lib.continual.ewc as continual_ewc

        ewc_penalty = continual_ewc.ewc_penalty
    """),
    "metrics": _cell("""
        from course_lib.continual import metrics as course_metrics

        average_accuracy = course_metrics.average_accuracy


        def backward_transfer(R) -> float:
            \"\"\"BWT = 1/(T−1) Σ_{j<T−1} (R[T−1, j] − R[j, j]).\"\"\"
            return course_metrics.backward_transfer(R)


        forward_transfer = lambda R, b: course_metrics.forward_transfer(R, b)  # noqa: E731
    """),
    "EWC": _cell("""
        from course_lib.continual.methods import EWC as CourseEWC


        class EWC(CourseEWC):
            \"\"\"Elastic weight consolidation, as the course implements it.\"\"\"

            name = "EWC (yours)"

            def __init__(self, lam: float = 100.0, fisher_samples: int = 300, fisher_fn=None,
                         penalty_fn=None, **kw):
                super().__init__(lam=lam, fisher_samples=fisher_samples, **kw)
    """),
}

_MAML_PROTONETS = {
    "prototypes": _cell("""
        from course_lib import protonets

        prototypes = protonets.prototypes
    """),
    "proto_logits": _cell("""
        import course_lib.protonets as pn

        proto_logits = lambda z, c: -pn.squared_distances(z, c)  # noqa: E731
    """),
    "inner_loop": _cell("""
        from course_lib.maml import inner_loop  # noqa: F401
    """),
    "outer_step": _cell("""
        import course_lib.maml as course_maml


        def outer_step(model: nn.Module, theta: dict, episodes: list,
                       optimizer: torch.optim.Optimizer, alpha, steps: int = 1,
                       first_order: bool = False, loss_fn=F.cross_entropy, inner=None) -> float:
            \"\"\"One MAML outer step on the course's meta-loss, adapting with ``inner``.\"\"\"
            inner = inner or inner_loop
            original = course_maml.inner_loop

            def through_inner(*args):  # the course's meta_loss adapts with the given inner loop
                course_maml.inner_loop = original  # an inner loop that calls the course's
                try:
                    return inner(*args)
                finally:
                    course_maml.inner_loop = through_inner

            course_maml.inner_loop = through_inner
            try:
                loss = course_maml.meta_loss(model, theta, episodes, alpha, steps, first_order,
                                             loss_fn)
            finally:
                course_maml.inner_loop = original
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return loss.item()
    """),
    "train_protonet": _cell("""
        from course_lib.training import meta_fit


        def train_protonet(model: nn.Module, sampler, steps: int, beta: float = 1e-3,
                           prototypes_fn=None, logits_fn=None) -> list[float]:
            \"\"\"Meta-train a prototypical network with the course's outer loop.\"\"\"
            prototypes_fn = prototypes_fn or prototypes
            logits_fn = logits_fn or proto_logits

            def step_loss():
                episode = sampler.sample()
                model.train()
                z = model(torch.cat([episode.support_x, episode.query_x]))
                m = len(episode.support_x)
                c = prototypes_fn(z[:m], episode.support_y, episode.ways)
                return F.cross_entropy(logits_fn(z[m:], c), episode.query_y), None

            optimizer = torch.optim.Adam(model.parameters(), lr=beta)
            history = meta_fit(step_loss, optimizer, steps, progress=False)
            model.eval()
            return history.loss
    """),
    "matching": _cell("""
        from course_lib import matching as mn


        def matching_probabilities(z_query: torch.Tensor, z_support: torch.Tensor,
                                   support_y: torch.Tensor, ways: int,
                                   scale: float = 10.0) -> torch.Tensor:
            \"\"\"The course's attention, then the course's vote.\"\"\"
            return mn.label_probabilities(mn.cosine_attention(z_query, z_support, scale),
                                          support_y, ways)
    """),
}

_MULTITASK = {
    "weighted_loss": _cell("""
        from course_lib.multitask import weighted_loss  # noqa: F401
    """),
    "UncertaintyWeighting": _cell("""
        from course_lib import multitask as mt


        class UncertaintyWeighting(mt.UncertaintyWeighting):
            \"\"\"Task weights from learned homoscedastic uncertainty (Kendall et al. 2018).\"\"\"
    """),
    "pcgrad": _cell("""
        import course_lib.multitask as course_multitask


        def pcgrad(grads: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
            \"\"\"Gradient surgery (PCGrad): the sum of the de-conflicted task gradients.\"\"\"
            return course_multitask.pcgrad(grads, generator)
    """),
    "train_step": _cell("""
        from course_lib.gradients import flat_grad, set_flat_grad
        from course_lib.multitask import batch_losses, uniform_step


        def train_step(model: MultiTaskMLP, tasks: list[Task], optimizer: torch.optim.Optimizer,
                       generator: torch.Generator, surgery: bool = False, batch_size: int = 32,
                       surgery_fn=None) -> torch.Tensor:
            \"\"\"One step of multi-task training, optionally with gradient surgery.\"\"\"
            surgery_fn = surgery_fn or pcgrad
            losses = batch_losses(model, tasks, batch_size, generator)  # (T,)
            params = list(model.parameters())
            optimizer.zero_grad()
            if surgery:
                grads = torch.stack([flat_grad(loss, params) for loss in losses])  # (T, P)
                set_flat_grad(params, surgery_fn(grads, generator))
            else:
                set_flat_grad(params, uniform_step(losses, params, torch.zeros(()))[0])
            optimizer.step()
            return losses.detach()
    """),
}

_RL = {
    "discounted_returns": _cell("""
        from course_lib.rl import discounted_returns  # noqa: F401
    """),
    "policy_evaluation": _cell("""
        def policy_evaluation(P: torch.Tensor, R: torch.Tensor, pi: torch.Tensor, gamma: float,
                              tol: float = 1e-10) -> torch.Tensor:
            \"\"\"v_π by iterating the Bellman expectation backup from v = 0.\"\"\"
            return rl.policy_evaluation(P, R, pi, gamma, tol)
    """),
    "value_iteration": _cell("""
        from course_lib.rl import dynamic_programming as dp

        value_iteration = dp.value_iteration
    """),
    "epsilon_greedy": _cell("""
        from course_lib.rl.bandits import epsilon_greedy as course_epsilon_greedy


        def epsilon_greedy(q: torch.Tensor, epsilon: float,
                           generator: torch.Generator) -> torch.Tensor:
            \"\"\"A ∼ ε-greedy(q).\"\"\"
            return course_epsilon_greedy(q, epsilon, generator)
    """),
    "reinforce_loss": _cell("""
        reinforce_loss = lambda logp, returns: rl.reinforce_loss(logp, returns)  # noqa: E731
    """),
    "reinforce_step": _cell("""
        import course_lib.rl.reinforce as course_reinforce


        def reinforce_step(policy: nn.Module, optimizer: torch.optim.Optimizer,
                           trajectories: list, gamma: float = 0.99, returns_fn=None,
                           loss_fn=None) -> float:
            \"\"\"One update of the course's REINFORCE loop, on the given episodes.\"\"\"
            returns_fn = returns_fn or discounted_returns
            loss_fn = loss_fn or reinforce_loss
            patches = {  # one batch of the course's loop: these episodes, these pieces
                "run_episodes": lambda *args, **kwargs: trajectories,
                "episode_weights": lambda rewards, g, weighting: (
                    returns_fn(rewards, g) if torch.is_tensor(rewards) else None),
                "reinforce_loss": loss_fn,
            }
            saved = {name: getattr(course_reinforce, name) for name in patches}
            adam = torch.optim.Adam
            try:
                for name, value in patches.items():
                    setattr(course_reinforce, name, value)
                torch.optim.Adam = lambda params, lr: optimizer  # the loop's "own" optimiser
                history = course_reinforce.train_reinforce(
                    policy, make_env=lambda: None, episodes=len(trajectories),
                    batch=len(trajectories), gamma=gamma, progress=False)
            finally:
                torch.optim.Adam = adam
                for name, value in saved.items():
                    setattr(course_reinforce, name, value)
            return history.losses[0]
    """),
}

_TRANSFER = {
    "freeze_up_to": _cell("""
        from course_lib.finetuning import set_trainable


        def freeze_up_to(model: ConvNet, n: int) -> ConvNet:
            \"\"\"Freeze blocks 0…n−1 of f_θ and make blocks n…depth−1 and the head trainable.\"\"\"
            depth = len(model.blocks)
            if not 0 <= n <= depth:
                raise ValueError(f"n must be in 0…{depth}, got {n}")
            set_trainable(model, ("head.",) + tuple(f"blocks.{i}." for i in range(n, depth)))
            return model
    """),
    "layerwise_param_groups": _cell("""
        import course_lib.finetuning as ft


        def layerwise_param_groups(model: ConvNet, lr: float, decay: float) -> list[dict]:
            \"\"\"Optimiser parameter groups with α_i = lr · decay^(depth − i) for block i.\"\"\"
            names = ["head"] + [f"blocks.{i}" for i in range(len(model.blocks))]
            groups = []
            for name, group in zip(names, ft.layerwise_groups(model, lr, decay)):
                params = [p for p in group["params"] if p.requires_grad]
                if params:
                    groups.append({"name": name, "params": params, "lr": group["lr"]})
            return groups
    """),
    "lora_linear": _cell("""
        from course_lib.adapters import LowRankConv2d


        class LoRALinear(LowRankConv2d):
            \"\"\"A frozen linear layer plus a trainable low-rank update, as a 1×1 conv.\"\"\"

            def __init__(self, base: nn.Linear, rank: int = 4, alpha: float = 8.0):
                out, inputs = base.weight.shape
                conv = nn.Conv2d(inputs, out, 1)
                conv.weight = nn.Parameter(base.weight.detach().view(out, inputs, 1, 1))
                conv.bias = nn.Parameter(base.bias.detach())
                super().__init__(conv, rank, alpha)  # freezes the conv, makes A and B
                self.base = base.requires_grad_(False)
                self.scaling = self.scale

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                \"\"\"x: (..., in) → (..., out).\"\"\"
                y = super().forward(x.reshape(-1, x.shape[-1], 1, 1))  # (n, out, 1, 1)
                return y.view(*x.shape[:-1], -1)
    """),
}

DELEGATING: dict[str, dict[str, str]] = {
    "bayes": _BAYES,
    "black_box": _BLACK_BOX,
    "continual": _CONTINUAL,
    "maml_protonets": _MAML_PROTONETS,
    "multitask": _MULTITASK,
    "rl": _RL,
    "transfer": _TRANSFER,
}
