"""Transfer learning by fine-tuning: pre-train θ on a source task 𝒯ₐ, then φ ← θ − α∇L(θ, 𝒟ᵗʳ_b).

The source data 𝒟ₐ is not used during transfer (the lecture's transfer setting). The recipes
are the lecture's common design choices: train from scratch, a linear probe on frozen
features, full fine-tuning, linear probe then fine-tune ("train last layer, then fine-tune
the entire network"), smaller learning rates for earlier layers, gradual unfreezing and a
re-initialised last block. Used by ``notebooks/01a_transfer_learning.ipynb`` and
``notebooks/01b_what_transfers.ipynb``.
"""
from __future__ import annotations

import copy
import sys

import torch
from torch import nn
from tqdm.auto import tqdm

from . import seeding
from .budget import Budget, get_budget
from .data import ImageSet, load_omniglot
from .episodes import Episode, EpisodeSampler
from .models import ConvNet
from .seeding import seed_everything
from .training import Estimate, accuracy, cached, fit, mean_ci, predict

PRETRAIN_DRAWERS = 15  # drawers 0–14 of each source class train θ; 15–19 stay held out


def source_subset(data: ImageSet, classes: int | None, drawers: range) -> ImageSet:
    """The first ``classes`` classes of ``data`` (all when None), only the given drawers."""
    classes = classes or data.classes
    drawer = torch.arange(len(data.y)) % 20  # Omniglot: 20 consecutive drawers per class
    keep = (data.y < classes) & (drawer >= drawers.start) & (drawer < drawers.stop)
    return ImageSet(data.x[keep], data.y[keep], classes, f"{data.name}[:{classes}]")


def pretrain(source: ImageSet, budget: Budget, seed: int = 0, steps: int | None = None,
             labels: torch.Tensor | None = None, tag: str = "", progress: bool = True) -> ConvNet:
    """θ: a :class:`ConvNet` trained to classify ``source`` (𝒟ₐ), cached on disk.

    Args:
        source: the source task's images and labels.
        budget: gives the width and the number of steps (``budget.pretrain_steps``).
        labels: train on these labels instead of ``source.y`` (e.g. shuffled labels).
        tag: a name for the cache entry when ``labels`` or the images are non-standard.

    The weights are cached (:func:`course_lib.training.cached`) keyed by source, budget and
    effective seed (:func:`course_lib.seeding.seed`, which moves with ``COURSE_SEED``), so the
    second notebook that needs θ loads it instead of training it again.
    """
    steps = steps or budget.pretrain_steps
    y = source.y if labels is None else labels
    outputs = int(y.max()) + 1
    # the effective seed names the entry: θ of another COURSE_SEED is another model
    key = (f"{source.name}{tag}_n{len(y)}_c{outputs}_w{budget.width}_s{steps}"
           f"_seed{seeding.seed(seed)}")
    seed_everything(seed)
    model = ConvNet(outputs, width=budget.width)
    cached(model, key, lambda: fit(model, source.x, y, steps, lr=1e-3, batch_size=64, seed=seed,
                                   progress=progress, desc=f"pre-train θ on {source.name}{tag}"))
    return model.eval()


def quick_theta() -> ConvNet:
    """θ pre-trained at the quick budget on the first 200 background characters (drawers 0–14,
    150 steps): notebook 04's frozen encoder at that budget, and the black_box assignment's at
    every budget, so that a grade does not depend on ``COURSE_BUDGET``. Cached like every θ."""
    return pretrain(source_subset(load_omniglot("background"), 200, range(PRETRAIN_DRAWERS)),
                    get_budget("quick"), steps=150, progress=False)


# models an assignment notebook may declare (``"course": {"models": [...]}`` in its metadata):
# the grader trains them once, before any kernel runs, into the cache the kernels read
MODELS = {"quick_theta": quick_theta}


def warm(names) -> int:
    """Train (or find) the cached models ``names`` of :data:`MODELS`; 2 if one is unknown."""
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        print(f"unknown model(s) {', '.join(unknown)}: the course has {', '.join(MODELS)}",
              file=sys.stderr)
        return 2
    for name in names:
        MODELS[name]()
    return 0


def set_trainable(model: nn.Module, prefixes=("",)) -> None:
    """Train exactly the parameters whose names start with one of ``prefixes``; freeze the rest.

    ``("",)`` trains everything, ``("head",)`` is a linear probe, ``("blocks.0",)`` tunes only
    the first block (surgical fine-tuning).
    """
    for name, p in model.named_parameters():
        p.requires_grad_(any(name.startswith(prefix) for prefix in prefixes))


def trainable_count(model: nn.Module) -> int:
    """Number of parameters that fine-tuning will change."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def head_and_body_groups(model: ConvNet, head_lr: float = 1e-2, body_lr: float = 1e-3) -> list[dict]:
    """Trainable parameters in two groups: the head at ``head_lr``, the blocks at ``body_lr``.

    A freshly initialised or re-purposed head needs larger steps than pre-trained features
    (the same α's as the linear probe and fine-tuning recipes).
    """
    groups = [{"params": [p for p in model.head.parameters() if p.requires_grad], "lr": head_lr},
              {"params": [p for p in model.blocks.parameters() if p.requires_grad], "lr": body_lr}]
    return [g for g in groups if g["params"]]


def layerwise_groups(model: ConvNet, lr: float, decay: float) -> list[dict]:
    """Parameter groups with α_head = lr and α_block_i = lr · decay^(depth − i).

    Earlier blocks hold more general features (lecture: "smaller learning rate for earlier
    layers"), so they move less.
    """
    depth = len(model.blocks)
    groups = [{"params": list(model.head.parameters()), "lr": lr}]
    for i, block in enumerate(model.blocks):
        groups.append({"params": list(block.parameters()), "lr": lr * decay ** (depth - i)})
    return groups


def _train(model, task: Episode, steps, lr=1e-3, params=None, seed=0):
    fit(model, task.support_x, task.support_y, steps, lr=lr, params=params, seed=seed,
        progress=False)


def _scratch(theta, task, steps, width, seed):
    model = ConvNet(task.ways, width=width)
    _train(model, task, steps, seed=seed)
    return model


def _new_head(theta, task):
    model = copy.deepcopy(theta)
    model.reset_head(task.ways)
    return model


def _linear_probe(theta, task, steps, width, seed):
    model = _new_head(theta, task)
    set_trainable(model, ("head",))
    _train(model, task, steps, lr=1e-2, seed=seed)
    return model


def _fine_tune(theta, task, steps, width, seed):
    model = _new_head(theta, task)
    _train(model, task, steps, seed=seed)
    return model


def _lp_then_ft(theta, task, steps, width, seed):
    model = _linear_probe(theta, task, steps // 2, width, seed)
    set_trainable(model)
    _train(model, task, steps - steps // 2, lr=3e-4, seed=seed)
    return model


def _layerwise_lr(theta, task, steps, width, seed):
    model = _new_head(theta, task)
    _train(model, task, steps, params=layerwise_groups(model, lr=1e-3, decay=0.3), seed=seed)
    return model


def _gradual_unfreeze(theta, task, steps, width, seed):
    model = _new_head(theta, task)
    depth = len(model.blocks)
    stages = [("head",)] + [("head",) + tuple(f"blocks.{j}" for j in range(depth - k, depth))
                            for k in range(1, depth + 1)]
    for k, prefixes in enumerate(stages):  # head, then the last block, …, then all blocks
        set_trainable(model, prefixes)
        _train(model, task, steps // len(stages), lr=1e-2 if k == 0 else 1e-3, seed=seed + k)
    return model


def _reinit_last_block(theta, task, steps, width, seed):
    model = _new_head(theta, task)
    fresh = ConvNet(task.ways, width=width)
    model.blocks[-1].load_state_dict(fresh.blocks[-1].state_dict())
    _train(model, task, steps, seed=seed)
    return model


RECIPES = {
    "scratch": _scratch,
    "linear probe": _linear_probe,
    "fine-tune": _fine_tune,
    "linear probe → fine-tune": _lp_then_ft,
    "layer-wise α": _layerwise_lr,
    "gradual unfreezing": _gradual_unfreeze,
    "re-init last block": _reinit_last_block,
}


def transfer(theta: ConvNet | None, task: Episode, recipe: str, budget: Budget,
             seed: int = 0) -> tuple[ConvNet, float]:
    """Adapt θ to the target task with one of :data:`RECIPES`; return φ and its test accuracy.

    Args:
        theta: the pre-trained network (left unchanged; ignored by ``"scratch"``).
        task: the target task; its support set is 𝒟ᵗʳ_b, its query set the test set.
        recipe: a key of :data:`RECIPES`.
        budget: ``budget.finetune_steps`` gradient steps, ``budget.width`` channels.
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {list(RECIPES)}")
    seed_everything(seed)
    phi = RECIPES[recipe](theta, task, budget.finetune_steps, budget.width, seed)
    return phi, accuracy(phi, task.query_x, task.query_y)


def target_tasks(target: ImageSet, shots: int, budget: Budget, ways: int = 20,
                 queries: int = 10, seed: int = 1, count: int | None = None) -> list[Episode]:
    """``count`` target tasks 𝒯_b (``budget.repeats`` by default): ``ways`` new classes,
    ``shots`` labels per class.

    Each is an :class:`Episode` whose support set is the labelled target data 𝒟ᵗʳ_b and whose
    query set (``queries`` per class) measures test accuracy. The tasks are drawn in order from
    one seeded sampler, so a longer list starts with the tasks of a shorter one: a comparison
    too close to resolve over ``budget.repeats`` tasks can add more (see ``first`` in
    :func:`compare` and :func:`transfer_by_depth`).
    """
    count = budget.repeats if count is None else count
    if count < 1:
        raise ValueError(f"count must be at least 1 target task, not {count}")
    sampler = EpisodeSampler(target, ways=ways, shots=shots, queries=queries, seed=seed)
    return [sampler.sample() for _ in range(count)]


def compare(theta: ConvNet | None, tasks: list[Episode], recipes, budget: Budget,
            progress: bool = True, first: int = 0) -> dict[str, Estimate]:
    """Test accuracy (mean, 95% CI half-width, the per-task accuracies) of each recipe over the
    same target tasks.

    ``first`` is the position of ``tasks[0]`` in a longer list of :func:`target_tasks` (task k
    is adapted with seed k): comparing ``tasks[:n]`` and then ``tasks[n:]`` with ``first=n``
    gives the same accuracies as comparing all of ``tasks`` at once (join them with
    :func:`~course_lib.training.pooled`).
    """
    results = {}
    for recipe in tqdm(list(recipes), desc="recipes", disable=not progress, leave=False):
        accs = [transfer(theta, task, recipe, budget, seed=k)[1]
                for k, task in enumerate(tasks, start=first)]
        results[recipe] = mean_ci(accs)
    return results


def tune_only(theta: ConvNet, train: tuple, test: tuple, prefixes, budget: Budget,
              seed: int = 0, steps: int | None = None) -> Estimate:
    """Surgical fine-tuning: tune only the parameters named by ``prefixes``, keep θ's head.

    For a shifted version of the *source* task (same classes), e.g. ``("blocks.0",)`` tunes
    the first block and ``("head",)`` the last layer (Lee et al. 2022, "Surgical fine-tuning").
    ``train`` and ``test`` are ``(x, y)`` pairs; returns the test accuracy of φ as an
    :class:`~course_lib.training.Estimate` over the test images (its samples: 1 for each image
    φ gets right, 0 otherwise), so two choices tested on the same images compare image by image.
    ``steps``: gradient steps (``budget.finetune_steps`` by default).
    """
    seed_everything(seed)
    phi = copy.deepcopy(theta)
    set_trainable(phi, prefixes)
    # one block, large steps: a low-level shift may need a block's weights to change sign
    fit(phi, *train, budget.finetune_steps if steps is None else steps, lr=1e-2, seed=seed,
        progress=False)
    x, y = test
    return mean_ci((predict(phi, x).argmax(1) == y).float())


def restrict_head(theta: ConvNet, classes: torch.Tensor) -> ConvNet:
    """A copy of θ whose head keeps only the rows of ``classes`` (labels 0…len(classes)−1)."""
    model = copy.deepcopy(theta)
    rows = model.head
    model.head = nn.Linear(rows.in_features, len(classes))
    model.head.load_state_dict({"weight": rows.weight[classes], "bias": rows.bias[classes]})
    return model


def copy_first_blocks(theta: ConvNet, n: int, ways: int, frozen: bool) -> ConvNet:
    """A fresh network whose first ``n`` blocks are θ's (frozen or not); the rest is random.

    Yosinski et al. (2014), "How transferable are features in deep neural networks?":
    transferring more blocks helps as long as those blocks are general rather than specific.
    """
    model = ConvNet(ways, width=theta.width, depth=len(theta.blocks))
    for i in range(n):
        model.blocks[i].load_state_dict(theta.blocks[i].state_dict())
    if frozen:
        set_trainable(model, [f"blocks.{i}" for i in range(n, len(model.blocks))] + ["head"])
    return model


def transfer_by_depth(theta: ConvNet, tasks: list[Episode], budget: Budget, frozen: bool,
                      depths=None, first: int = 0) -> list[Estimate]:
    """Accuracy (mean, CI, the per-task accuracies) for n blocks copied from θ, the rest trained
    on 𝒟ᵗʳ_b: one estimate for each n of ``depths`` (n = 0 … depth of θ by default).

    ``first``: the position of ``tasks[0]`` in a longer list of tasks, as in :func:`compare`.
    """
    depths = range(len(theta.blocks) + 1) if depths is None else depths
    curve = []
    for n in depths:
        if not 0 <= n <= len(theta.blocks):
            raise ValueError(f"θ has {len(theta.blocks)} blocks: cannot copy {n}")
        accs = []
        for k, task in enumerate(tasks, start=first):
            seed_everything(k)
            model = copy_first_blocks(theta, n, task.ways, frozen)
            fit(model, task.support_x, task.support_y, budget.finetune_steps, seed=k,
                params=head_and_body_groups(model), progress=False)
            accs.append(accuracy(model, task.query_x, task.query_y))
        curve.append(mean_ci(accs))
    return curve


if __name__ == "__main__":
    if sys.argv[1:2] != ["warm"]:
        sys.exit("usage: python -m course_lib.finetuning warm NAME ...")
    # the imported module, not this __main__ copy: the cache fingerprint names the functions'
    # module, and a kernel's θ is course_lib.finetuning's
    from course_lib.finetuning import warm as imported
    sys.exit(imported(sys.argv[2:]))
