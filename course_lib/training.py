"""Training and evaluation loops shared by every topic.

- :func:`adam`: the course's Adam (the multi-tensor update: the default's numbers, faster).
- :func:`fit`: minibatch gradient descent with Adam, a tqdm progress bar and a :class:`History`.
- :func:`cached`: load a trained model and its history from the cache, or train and store it.
- :func:`episodic_trained`: a metric meta-learner (prototypical, matching, relation network)
  meta-trained on episodes once, then loaded from the cache.
- :func:`meta_fit`: the outer loop every meta-learner shares (one optimiser step per meta-batch,
  timing, meta-validation now and then), recorded in a :class:`MetaHistory`.
- :func:`accuracy`: classification accuracy of a model on a tensor data set.
- :func:`mean_ci`: mean ± 95% confidence interval, as few-shot papers report over 600 episodes.
- :func:`evaluate_episodes`: a learner's query accuracy over episodes, as mean ± 95% CI;
  :func:`embedded_learner` is a learner whose f_θ it runs once per test image.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import marshal
import math
import os
import time
import types
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import seeding
from .episodes import EpisodeSampler, stack_episodes
from .models import MLP, ConvNet
from .paths import cache_dir, cache_file
from .seeding import generator, seed_everything


def adam(params, lr: float = 1e-3) -> torch.optim.Adam:
    """``torch.optim.Adam(params, lr=lr)`` with its multi-tensor ("foreach") update.

    On a CPU it computes the same numbers as the default loop over the tensors, bit for bit
    (``tests/test_training.py`` checks it over 1,500 steps), so a student's plain
    ``torch.optim.Adam`` reproduces the course's runs; it makes one call per operation for all
    of θ instead of one per tensor, which is up to a third of a step of the course's small
    networks (a multi-task MLP of notebook 02: 11 → 8 s for 1,600 steps).
    """
    return torch.optim.Adam(params, lr=lr, foreach=True)


@dataclass
class History:
    """What :func:`fit` saw: training loss every step, validation accuracy every ``eval_every``."""

    loss: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)


@dataclass
class MetaHistory(History):
    """What :func:`meta_fit` saw: the outer loss of every step, the query accuracy of every
    step's training episodes (when the learner reports it), meta-validation accuracy every
    ``val_every`` steps (``val_step``/``val_acc``) and ``seconds``, the training time without
    the validation."""

    accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0


_HISTORIES = {"History": History, "MetaHistory": MetaHistory}


def cached(model: nn.Module, key: str, train, retrain: bool = False) -> History:
    """Train ``model`` with ``train() → History`` once; later calls load it from the cache.

    The course's one model cache: the weights and the history (with the seconds training took
    when it ran) are stored under ``<cache>/models/<key>.pt`` (see :func:`course_lib.paths.
    cache_dir`); ``key`` must name everything that changes the result (data, budget,
    hyperparameters, seed), and :func:`fingerprint` adds the code: a change to the training
    functions or the model's classes trains again. ``retrain=True`` trains and overwrites the entry. A later notebook
    loads what an earlier one trained (θ pre-trained in 01a, the MAML model of 05 in 06).
    The file is written to a temporary name and renamed, so a reader never sees half of it;
    and while one process trains an entry, another that asks for it waits for it (a lock file
    beside it) instead of training it a second time — notebooks run in parallel share models.
    """
    name = f"models/{key.replace('/', '-')}_code{fingerprint(train, model)}.pt"
    path = cache_dir() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.with_name(f"{path.name}.lock")):
        found = cache_file(name)
        if found.exists() and not retrain:
            stored = torch.load(found, weights_only=True, map_location="cpu")
            if isinstance(stored, dict) and stored.get("kind") in _HISTORIES:
                model.load_state_dict(stored["model"])
                return _HISTORIES[stored["kind"]](**stored["history"])
            # an entry in an older format: train again and replace it
        history = train()
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        torch.save({"model": model.state_dict(), "history": asdict(history),
                    "kind": type(history).__name__}, partial)
        os.replace(partial, path)
        return history


def fingerprint(train, model: nn.Module | None = None) -> str:
    """12 hex digits that change with the code behind a cached model: the source of ``train``
    and of every ``course_lib`` function or class it reaches through its names (``fit`` and
    what ``fit`` calls, a module's functions named as ``maml.meta_train`` …), of the classes of
    ``model``'s modules, and torch's version. The arguments are the cache key's job."""
    sources: dict[str, str] = {"torch": torch.__version__}
    todo = [train, *(type(m) for m in (model.modules() if model is not None else ()))]
    seen: set[int] = set()
    while todo:
        obj = inspect.unwrap(todo.pop())
        if isinstance(obj, functools.partial):
            todo.append(obj.func)
            continue
        if id(obj) in seen or not _ours(obj):
            continue
        seen.add(id(obj))
        try:
            text = inspect.getsource(obj)
        except (OSError, TypeError):   # no source file (exec, a prompt): its code object
            code = getattr(obj, "__code__", None)
            text = marshal.dumps(code).hex() if code else ""
        # one entry per object, named by its text too: generated functions share a name (every
        # dataclass's __repr__ is __create_fn__.<locals>.__repr__), and keeping whichever came
        # first made the fingerprint depend on the set order of names, i.e. on PYTHONHASHSEED
        name = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
        sources[f"{name} {hashlib.sha256(text.encode()).hexdigest()[:12]}"] = text
        todo += _reached(obj)
    text = "\n".join(f"{k}\n{v}" for k, v in sorted(sources.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _ours(obj) -> bool:
    """A function or class of the course's library (or of a notebook's own cells)."""
    module = getattr(obj, "__module__", "") or ""
    return (isinstance(obj, (types.FunctionType, type))
            and (module.split(".")[0] == "course_lib" or module == "__main__"))


def _reached(obj) -> list:
    """The functions and classes ``obj``'s code names: its globals (and attributes of the
    course_lib modules among them), its closure, and a class's methods and bases."""
    if isinstance(obj, type):
        members = [getattr(v, "__func__", getattr(v, "fget", v)) for v in vars(obj).values()]
        return [*obj.__bases__, *members]
    codes, names = [obj.__code__], set()
    while codes:
        code = codes.pop()
        names |= set(code.co_names)
        codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    found = [obj.__globals__[n] for n in names if n in obj.__globals__]
    found += [c.cell_contents for c in obj.__closure__ or () if _filled(c)]
    found += [getattr(m, n) for m in found if isinstance(m, types.ModuleType)
              and m.__name__.split(".")[0] == "course_lib" for n in names if hasattr(m, n)]
    for default in obj.__defaults__ or ():
        found.append(default)
    return found


def _filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


@contextmanager
def _locked(lock: Path):
    """Hold an exclusive lock on the file ``lock`` (waiting for another process that holds
    it); where the system has no ``fcntl`` (Windows), nothing is locked."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def meta_fit(step_loss, optimizer: torch.optim.Optimizer, steps: int, decay_every: int = 0,
             validate=None, val_every: int = 0, progress: bool = True,
             desc: str = "meta-train θ") -> MetaHistory:
    """The outer loop of meta-training: ``steps`` optimiser steps on the meta-loss.

    Args:
        step_loss: ``() → (loss, accuracy or None)``: draws the next meta-batch of tasks and
            returns its meta-loss (a differentiable scalar) and its query accuracy.
        optimizer: updates θ (and whatever else is meta-learned) with learning rate β.
        steps: outer steps. decay_every: halve β every this many steps (0: constant β).
        validate: ``() → accuracy`` on meta-validation episodes, called every ``val_every``
            steps; its time is not counted as training time.

    Used by :mod:`course_lib.maml`, :mod:`course_lib.blackbox` and :func:`episodic_fit`.
    """
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, decay_every or steps + 1, gamma=0.5)
    history, start = MetaHistory(), time.perf_counter()
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
    for step in bar:
        loss, acc = step_loss()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        history.loss.append(loss.item())
        if acc is not None:
            history.accuracy.append(acc)
        if validate is not None and val_every and (step + 1) % val_every == 0:
            history.seconds += time.perf_counter() - start
            history.val_step.append(step + 1)
            history.val_acc.append(validate())
            start = time.perf_counter()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    history.seconds += time.perf_counter() - start
    return history



def episodic_fit(model: nn.Module, episode_loss, sampler, steps: int, beta: float = 1e-3,
                 decay_every: int = 0, validate=None, val_every: int = 0, progress: bool = True,
                 desc: str = "meta-train θ") -> MetaHistory:
    """Episodic training of a metric-based meta-learner (prototypical, matching and relation
    networks): one Adam step at rate β on ``episode_loss(model, episode) → (loss, accuracy)``
    per episode 𝒯ᵢ drawn from ``sampler``, β halved every ``decay_every`` steps; ``validate``
    and ``val_every`` as in :func:`meta_fit`. The weights are stored channels-last (NHWC: on a
    CPU batch norm and max-pooling of small feature maps run about 1.5× faster; the function
    the model computes is unchanged); the model is left in eval mode."""
    model.to(memory_format=torch.channels_last)

    def step_loss():
        model.train()
        return episode_loss(model, sampler.sample())

    history = meta_fit(step_loss, adam(model.parameters(), lr=beta), steps,
                       decay_every, validate, val_every, progress, desc)
    model.eval()
    return history


def episodic_trained(kind: str, make_model, meta_train, images, budget, ways: int, shots: int,
                     queries: int, steps: int, beta: float = 1e-3, decay_every: int = 0,
                     seed: int = 0, progress: bool = True):
    """A metric meta-learner's θ meta-trained on ``ways``-way ``shots``-shot episodes of
    ``images`` with ``queries`` queries per class, cached like MAML's θ (:func:`cached`): a
    notebook run again loads it. Returns ``(model, history)``; ``history.seconds`` is the time
    training took when it ran.

    Args:
        kind: the method's name in the cache key (``"protonet"``, ``"matching"``, ``"relation"``).
        make_model: ``() → model``, called after seeding, so θ's initialisation is seeded.
        meta_train: the method's ``meta_train(model, sampler, steps, beta=…, decay_every=…,
            progress=…, desc=…)``.
        the rest: as :func:`course_lib.protonets.meta_train`; ``seed`` seeds θ and the episodes.
    """
    seed_everything(seed)
    sampler = EpisodeSampler(images, ways=ways, shots=shots, queries=queries, seed=seed)
    model = make_model()
    # the effective seed names the entry: θ of another COURSE_SEED is another model
    key = (f"{kind}_{images.name}_n{len(images)}_w{budget.width}_{ways}way{shots}shot{queries}q"
           f"_steps{steps}_beta{beta}_decay{decay_every}_seed{seeding.seed(seed)}")
    history = cached(model, key, lambda: meta_train(
        model, sampler, steps, beta=beta, decay_every=decay_every, progress=progress,
        desc=f"meta-train {kind} θ ({shots}-shot)"))
    return model.eval(), history


def freeze_frozen_batchnorm(model: nn.Module) -> None:
    """Put batch-norm layers whose parameters are frozen in eval mode.

    A frozen layer must not change: in train mode batch norm would still update its running
    statistics, so a "frozen" body would drift during a linear probe.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            if not any(p.requires_grad for p in module.parameters()):
                module.eval()


def _fixed_body(model: nn.Module, params) -> bool:
    """Whether ``model`` computes head(features(x)) (a :class:`~course_lib.models.ConvNet` or
    :class:`~course_lib.models.MLP`, whose forward is that), only its head trains, and the rest
    is a fixed function of each image: no parameter outside the head requires a gradient, so
    its batch norm runs on its running statistics (:func:`freeze_frozen_batchnorm`), and it
    has no dropout."""
    if type(model).forward not in (ConvNet.forward, MLP.forward):
        return False
    head = model.head
    in_head = {id(p) for p in head.parameters()}
    groups = params if params is not None else [p for p in model.parameters() if p.requires_grad]
    trained = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
    body = [m for m in model.modules() if m is not head and not any(m is h for h in head.modules())]
    return (bool(trained) and all(id(p) in in_head for p in trained)
            and not any(p.requires_grad for p in model.parameters() if id(p) not in in_head)
            and all(m.track_running_stats for m in body
                    if isinstance(m, nn.modules.batchnorm._BatchNorm))
            and not any(isinstance(m, nn.modules.dropout._DropoutNd) for m in body))


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float = 1e-3,
        batch_size: int = 64, params=None, loss_fn=F.cross_entropy, weights=None, val=None,
        eval_every: int = 0, seed: int = 0, progress: bool = True, desc: str = "fit") -> History:
    """Train ``model`` on (x, y) for ``steps`` Adam steps on random minibatches.

    Args:
        model: the network f_θ; only parameters with ``requires_grad`` are updated.
        x: inputs, shape (n, *input_shape).
        y: targets, shape (n,) (class labels) or (n, d) (regression).
        steps: number of gradient steps.
        lr: learning rate α (ignored for groups in ``params`` that set their own ``lr``).
        batch_size: minibatch size (the whole set when it is smaller).
        params: parameters or parameter groups for the optimiser (default: trainable ones).
        loss_fn: per-batch loss; with ``weights`` it must accept ``reduction="none"``.
        weights: optional per-example weights, shape (n,) (importance weighting).
        val: optional ``(x_val, y_val)`` whose accuracy is recorded every ``eval_every`` steps.
        seed: seeds the minibatch order.
        progress: show a tqdm progress bar.

    When only the head trains (a linear probe: ``model`` has ``features`` and ``head``, and
    nothing else of it is trainable) and the steps would show the body every image, the
    features of x are computed once and each step runs the head alone: the same minibatches and
    the same steps, without running the frozen body ``steps`` times.
    """
    # a list, so that a generator such as model.parameters() is read by both uses below
    params = list(params) if params is not None else [p for p in model.parameters() if p.requires_grad]
    fixed_body = _fixed_body(model, params)
    optimizer = adam(params, lr=lr)
    g = generator(seed)
    history = History()
    batch_size = min(batch_size, len(x))
    if fixed_body and steps * batch_size >= len(x):   # the steps would run the body on every image
        model.train()
        freeze_frozen_batchnorm(model)
        with torch.no_grad():
            z = torch.cat([model.features(chunk) for chunk in x.split(1024)])
        forward = lambda idx: model.head(z[idx])
    else:
        forward = lambda idx: model(x[idx])
    for step in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        model.train()
        freeze_frozen_batchnorm(model)
        idx = torch.randperm(len(x), generator=g)[:batch_size]
        if weights is None:
            loss = loss_fn(forward(idx), y[idx])
        else:
            loss = (weights[idx] * loss_fn(forward(idx), y[idx], reduction="none")).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.loss.append(loss.item())
        if val is not None and eval_every and ((step + 1) % eval_every == 0 or step + 1 == steps):
            history.val_step.append(step + 1)
            history.val_acc.append(accuracy(model, *val))
    model.eval()
    return history


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Model outputs for x in eval mode, in batches: shape (n, outputs)."""
    model.eval()
    return torch.cat([model(chunk) for chunk in x.split(batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of x whose arg-max logit is the label y; x: (n, …), y: (n,)."""
    return (predict(model, x).argmax(1) == y).float().mean().item()


class Estimate(tuple):
    """``(mean, ci)`` as :func:`mean_ci` gives it, which also keeps the numbers behind it in
    ``samples``: two estimates over the same tasks or episodes are paired samples, compared
    by :meth:`course_lib.results.Claims.beats` (unpacking ``m, ci = estimate`` still works)."""

    samples: list[float]

    def __new__(cls, mean: float, ci: float, samples):
        estimate = super().__new__(cls, (mean, ci))
        estimate.samples = [float(x) for x in samples]
        return estimate

    def __reduce__(self):
        return Estimate, (self[0], self[1], self.samples)


def mean_ci(values) -> Estimate:
    """Mean and the half-width of its 95% confidence interval (1.96 · std / √n), as an
    :class:`Estimate` that keeps the values.

    ``values``: a tensor (any shape, flattened) or an iterable of numbers."""
    v = (values.detach().flatten().double() if isinstance(values, torch.Tensor)
         else torch.as_tensor(list(values), dtype=torch.float64))
    if len(v) < 2:
        return Estimate(v.mean().item(), float("nan"), v.tolist())
    return Estimate(v.mean().item(), 1.96 * v.std().item() / math.sqrt(len(v)), v.tolist())


def pooled(*estimates: Estimate) -> Estimate:
    """One :class:`Estimate` from the samples of several, in order: the accuracies over a first
    set of tasks and over the tasks added after it, as if all had been measured together."""
    return mean_ci([x for estimate in estimates for x in estimate.samples])


def embedded_learner(embed, head):
    """A learner made of an embedding applied to each image on its own and a head that reads
    the features: ``(support_x, support_y, query_x) → head(f_θ(support_x), support_y,
    f_θ(query_x))``.

    ``embed`` maps images (n, *input_shape) to features (n, …); it runs without gradients, and
    a module runs in eval mode (batch norm with its running statistics), so an image's features
    do not depend on the other images. ``head(support_z, support_y, query_z) → labels``; a head
    that solves many stacked episodes at once says so with ``head.many``. The learner keeps both
    as ``learner.embed`` and ``learner.head``, so :func:`evaluate_episodes` can embed the test
    images once instead of once per episode.
    """

    @torch.no_grad()
    def features(x):
        if isinstance(embed, nn.Module):
            embed.eval()
        return embed(x)

    def predict(support_x, support_y, query_x):
        z = features(torch.cat([support_x, query_x]))   # one forward pass for the episode
        return head(z[: len(support_x)], support_y, z[len(support_x):])

    def stacked(x):   # (E, n, *input_shape) → (E, n, …)
        return features(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    if hasattr(head, "many"):
        predict.many = lambda support_x, support_y, query_x: head.many(
            stacked(support_x), support_y, stacked(query_x))
    predict.embed, predict.head = features, head
    return predict


@torch.no_grad()
def on_features(learner, sampler, episodes: int, slice_size: int = 512):
    """``(learner, sampler)`` to evaluate ``episodes`` episodes with, the images embedded once.

    When ``learner`` is an :func:`embedded_learner` and the episodes would show f_θ more images
    than the sampler's classes hold, every image of those classes is embedded once (in slices of
    ``slice_size``) and the returned pair is its head and the sampler's twin over the features
    (:meth:`~course_lib.episodes.EpisodeSampler.over`, the same stream of episodes). Otherwise
    the pair is returned unchanged. Either way the accuracies are the same, episode by episode.
    """
    embed, over = getattr(learner, "embed", None), getattr(sampler, "over", None)
    if embed is None or over is None or sampler.device is not None:   # an EpisodeSampler on the CPU
        return learner, sampler
    rows = torch.cat([sampler.index[int(c)] for c in sampler.classes])
    if episodes * sampler.ways * (sampler.shots + sampler.queries) <= len(rows):
        return learner, sampler
    z = torch.cat([embed(sampler.data.x[part]) for part in rows.split(slice_size)])
    features = z.new_zeros(len(sampler.data), *z.shape[1:])   # rows of other classes stay 0
    features[rows] = z
    return learner.head, over(features)


def evaluate_episodes(learner, sampler, episodes: int, progress: bool = True,
                      desc: str = "episodes", chunk: int = 100) -> Estimate:
    """Mean ± 95% CI of a learner's query accuracy over ``episodes`` episodes of ``sampler``.

    Args:
        learner: a function ``(support_x, support_y, query_x) → predicted query labels`` of
            shape (ways·queries,): it sees the support set 𝒟ᵗʳ and the query inputs, never
            the query labels. A learner that solves many episodes at once says so with an
            attribute ``learner.many``, the same function of stacked episodes (a leading
            episode dimension, see :func:`~course_lib.episodes.stack_episodes`); it is
            given ``chunk`` episodes per call and its accuracy is the same, episode by episode.
        sampler: an :class:`~course_lib.episodes.EpisodeSampler`.

    An :func:`embedded_learner` is evaluated on features: its f_θ sees each test image once
    (:func:`on_features`), not once per episode that draws it.
    """
    learner, sampler = on_features(learner, sampler, episodes)
    many = getattr(learner, "many", None)
    accs = []
    with tqdm(total=episodes, desc=desc, disable=not progress, leave=False) as bar:
        while len(accs) < episodes:
            batch = [sampler.sample() for _ in range(min(chunk if many else 1, episodes - len(accs)))]
            if many:
                support_x, support_y, query_x, query_y = stack_episodes(batch)
                correct = many(support_x, support_y, query_x) == query_y
            else:
                e = batch[0]
                correct = (learner(e.support_x, e.support_y, e.query_x) == e.query_y)[None]
            accs += correct.float().mean(1).tolist()
            bar.update(len(batch))
    return mean_ci(accs)


def accuracy_by_shots(learner, sampler, shots, episodes: int, progress: bool = True,
                      desc: str = "examples per class") -> list[Estimate]:
    """Query accuracy (mean, 95% CI) of ``learner`` given only the first k support examples of
    each class, for each k in ``shots``: how a learner uses a 𝒟ᵗʳ smaller or larger than the
    one it was trained with.

    Each episode of ``sampler`` (``max(shots)`` examples per class, grouped by class) is drawn
    once; for every k the learner gets the first k of each class (nested subsets) and the same
    queries, so the rows compare the k episode by episode. A black box reads the larger 𝒟ᵗʳ in
    its input and changes no weight: in-context learning. (For a prototypical network,
    :func:`course_lib.protonets.accuracy_by_shots` gives the same numbers and embeds each episode
    once.)
    """
    if max(shots) > sampler.shots:
        raise ValueError(f"the sampler has {sampler.shots} shots, cannot test {max(shots)}")
    accs = {k: [] for k in shots}
    for _ in tqdm(range(episodes), desc=desc, disable=not progress, leave=False):
        e = sampler.sample()   # class c's examples at c·S … c·S + S − 1
        for k in shots:
            first = (torch.arange(e.ways)[:, None] * sampler.shots + torch.arange(k)).flatten()
            predicted = learner(e.support_x[first], e.support_y[first], e.query_x)
            accs[k].append((predicted == e.query_y).float().mean().item())
    return [mean_ci(accs[k]) for k in shots]
