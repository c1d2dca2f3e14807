"""Transfer by fine-tuning: freezing, layer-wise learning rates, recipes, pre-training cache."""
import dataclasses

import pytest
import torch

from course_lib import finetuning
from course_lib.budget import get_budget
from course_lib.data import ImageSet
from course_lib.episodes import EpisodeSampler
from course_lib.finetuning import (RECIPES, layerwise_groups, pretrain, set_trainable,
                                   source_subset, trainable_count, transfer)
from course_lib.models import ConvNet
from course_lib.training import predict

W = 8  # channels of the tiny test nets


@pytest.fixture
def tiny_budget():
    return dataclasses.replace(get_budget("quick"), finetune_steps=3, pretrain_steps=3, width=W)


def toy_images(classes: int = 6, per_class: int = 20, seed: int = 0) -> ImageSet:
    """Random 28×28 images, ``per_class`` consecutive examples per class (Omniglot's layout)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(classes * per_class, 1, 28, 28, generator=g)
    return ImageSet(x, torch.arange(classes).repeat_interleave(per_class), classes, "toy")


@pytest.fixture
def task():
    return EpisodeSampler(toy_images(), ways=3, shots=2, queries=4).sample()


def unbalanced(task):
    """``task`` with query labels 6 × 0, 3 × 1, 3 × 2 (the toy images are random, so any labels
    will do): a tiny net that predicts one class everywhere then scores 1/2 or 1/4 on the query
    set, never the 1/3 it scores on the balanced support set or on any balanced set."""
    return dataclasses.replace(task, query_y=torch.tensor([0] * 6 + [1] * 3 + [2] * 3))


# ---------------------------------------------------------------------------- freezing
def test_set_trainable_and_count():
    """checks the prefixes rule and trainable_count against closed forms for width w, c classes."""
    w, c = W, 5
    model = ConvNet(c, width=w)
    first, later, head = 9 * w + 3 * w, 9 * w * w + 3 * w, w * c + c
    set_trainable(model)
    assert trainable_count(model) == first + 3 * later + head
    set_trainable(model, ("head",))  # linear probe
    assert trainable_count(model) == head
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["head.weight",
                                                                             "head.bias"]
    set_trainable(model, ("blocks.0",))  # surgical: the first block only
    assert trainable_count(model) == first
    set_trainable(model, ("blocks.2", "blocks.3", "head"))
    assert trainable_count(model) == 2 * later + head
    set_trainable(model, ())
    assert trainable_count(model) == 0


def test_layerwise_groups():
    """checks α_head = lr, α_block_i = lr · decay^(depth − i), every parameter in exactly one group."""
    model = ConvNet(5, width=W)
    groups = layerwise_groups(model, lr=1e-2, decay=0.5)
    assert [g["lr"] for g in groups] == pytest.approx([1e-2, 1e-2 / 16, 1e-2 / 8, 1e-2 / 4, 1e-2 / 2])
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert groups[0]["params"] == list(model.head.parameters())
    # the optimiser uses each group's α: Adam's first step moves a weight by α · sign(g) ≈ α
    opt = torch.optim.Adam(groups, lr=123.0)
    before = [[p.detach().clone() for p in g["params"]] for g in groups]
    model.train()
    torch.nn.functional.cross_entropy(model(torch.rand(8, 1, 28, 28)), torch.arange(8) % 5).backward()
    opt.step()
    for group, old in zip(groups, before):
        step = torch.cat([(p.detach() - q).abs().flatten() for p, q in zip(group["params"], old)])
        assert step.median() == pytest.approx(group["lr"], rel=1e-3)


def test_source_subset():
    """checks that source_subset keeps the first classes and only the given drawers."""
    data = toy_images(classes=6)
    sub = source_subset(data, 4, range(0, 15))
    assert len(sub) == 4 * 15 and sub.classes == 4
    assert torch.equal(sub.y, torch.arange(4).repeat_interleave(15))
    assert torch.equal(sub.x[:15], data.x[:15]) and torch.equal(sub.x[15:30], data.x[20:35])
    held = source_subset(data, None, range(15, 20))
    assert len(held) == 6 * 5 and held.classes == 6


# ---------------------------------------------------------------------------- transfer
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_transfer_leaves_theta_and_scores(recipe, task, tiny_budget):
    """checks every recipe: θ unchanged (weights, buffers, trainability), φ a new net, and the
    accuracy that of φ on the (unbalanced) query set."""
    task = unbalanced(task)
    torch.manual_seed(0)
    theta = ConvNet(10, width=W).eval()
    state = {k: v.clone() for k, v in theta.state_dict().items()}
    phi, acc = transfer(theta, task, recipe, tiny_budget, seed=0)
    assert all(torch.equal(v, theta.state_dict()[k]) for k, v in state.items())
    assert all(p.requires_grad for p in theta.parameters())
    assert theta.head.out_features == 10
    assert phi is not theta
    logits = predict(phi, task.query_x)
    assert logits.shape == (len(task.query_y), task.ways)
    # accuracy is phi's own query accuracy (oracle: recomputed from its logits), k / 12 exactly
    correct = int((logits.argmax(1) == task.query_y).sum())
    assert len(task.query_y) == 12 and acc == pytest.approx(correct / 12)


def test_scratch_needs_no_theta(task, tiny_budget):
    """checks that "scratch" ignores θ, so None is accepted, builds a net of budget.width, and
    scores it on the (unbalanced) query set (oracle: its predictions counted by hand)."""
    task = unbalanced(task)
    phi, acc = transfer(None, task, "scratch", tiny_budget)
    assert isinstance(phi, ConvNet) and phi.width == W
    correct = int((predict(phi, task.query_x).argmax(1) == task.query_y).sum())
    assert acc == pytest.approx(correct / len(task.query_y))


def test_transfer_is_seeded(task, tiny_budget):
    """checks that the same seed gives the same φ."""
    theta = ConvNet(10, width=W)
    a, _ = transfer(theta, task, "fine-tune", tiny_budget, seed=1)
    b, _ = transfer(theta, task, "fine-tune", tiny_budget, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_linear_probe_changes_only_the_head(task, tiny_budget):
    """checks that the linear probe's body is θ's body and the fine-tune's is not."""
    theta = ConvNet(10, width=W).eval()
    probe, _ = transfer(theta, task, "linear probe", tiny_budget)
    tuned, _ = transfer(theta, task, "fine-tune", tiny_budget)
    body = {k: v for k, v in theta.state_dict().items() if k.startswith("blocks")}
    assert all(torch.equal(probe.state_dict()[k], v) for k, v in body.items())
    assert not all(torch.equal(tuned.state_dict()[k], v) for k, v in body.items())


def test_unknown_recipe(task, tiny_budget):
    """checks that a misspelt recipe is a ValueError that quotes it."""
    with pytest.raises(ValueError, match="unknown recipe 'fine tune'"):
        transfer(ConvNet(3, width=W), task, "fine tune", tiny_budget)


# ---------------------------------------------------------------------------- pre-training cache
def test_pretrain_caches(tmp_data, tiny_budget, monkeypatch):
    """checks that pretrain saves θ under cache/models and the second call loads it, untrained."""
    source = toy_images(classes=4)
    first = pretrain(source, tiny_budget, seed=0, progress=False)
    saved = list((tmp_data / "cache" / "models").glob("*.pt"))
    assert len(saved) == 1 and "toy" in saved[0].name and "seed0" in saved[0].name

    def no_training(*args, **kwargs):
        raise AssertionError("pretrain trained again instead of loading the cache")

    # (not by replacing finetuning.fit: other training code is another cache entry)
    monkeypatch.setattr(torch.optim.Adam, "step", no_training)
    second = pretrain(source, tiny_budget, seed=0, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(first.state_dict().values(),
                                                 second.state_dict().values()))
    assert not second.training and second.head.out_features == 4


def test_pretrain_cache_key_separates_runs(tmp_data, tiny_budget):
    """checks that another seed or tag trains a new θ instead of reusing the cached one."""
    source = toy_images(classes=4)
    a = pretrain(source, tiny_budget, seed=0, progress=False)
    b = pretrain(source, tiny_budget, seed=1, progress=False)
    shuffled = torch.randperm(len(source.y), generator=torch.Generator().manual_seed(0))
    c = pretrain(source, tiny_budget, seed=0, labels=source.y[shuffled], tag="-shuffled",
                 progress=False)
    assert len(list((tmp_data / "cache" / "models").glob("*.pt"))) == 3
    assert not torch.equal(a.head.weight, b.head.weight)
    assert not torch.equal(a.head.weight, c.head.weight)


def test_tune_only_scores_each_test_image(tiny_budget):
    """checks surgical fine-tuning returns its test accuracy with one 0/1 sample per test image
    (so two choices tested on the same images compare image by image), and leaves θ alone."""
    source = toy_images(classes=4)
    theta = ConvNet(4, width=W)
    before = [p.clone() for p in theta.parameters()]
    x, y = source.x[:40], source.y[:40]
    estimate = finetuning.tune_only(theta, (x, y), (x, y), ("blocks.0",), tiny_budget)
    mean, ci = estimate
    assert len(estimate.samples) == 40 and set(estimate.samples) <= {0.0, 1.0}
    assert mean == pytest.approx(sum(estimate.samples) / 40) and ci >= 0
    assert all(torch.equal(a, b) for a, b in zip(before, theta.parameters()))


# ---------------------------------------------------------------------------- more target tasks
def test_target_tasks_extend_the_shorter_list(tiny_budget):
    """checks that a longer list of target tasks starts with the budget's tasks (so a close
    comparison can add tasks to it), and that a count below 1 is a ValueError."""
    images = toy_images(classes=8)
    short = finetuning.target_tasks(images, shots=2, budget=tiny_budget, ways=3, queries=2)
    long = finetuning.target_tasks(images, shots=2, budget=tiny_budget, ways=3, queries=2, count=5)
    assert len(short) == tiny_budget.repeats and len(long) == 5
    for a, b in zip(short, long):
        assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_y, b.query_y)
    assert not torch.equal(long[-1].support_x, long[0].support_x)
    with pytest.raises(ValueError, match="count must be at least 1"):
        finetuning.target_tasks(images, shots=2, budget=tiny_budget, ways=3, count=0)


def test_added_tasks_give_the_accuracies_of_one_comparison(tiny_budget):
    """checks that comparing the first tasks, then the rest with ``first``, and pooling them
    gives the per-task accuracies of one comparison over all, for compare and for
    transfer_by_depth (and for a subset of depths); without ``first`` the seeds differ."""
    from course_lib.training import pooled
    budget = dataclasses.replace(tiny_budget, finetune_steps=30)
    images = toy_images(classes=8)
    rows = torch.arange(28).view(1, 1, 28, 1) // 3 == images.y.view(-1, 1, 1, 1)
    images = dataclasses.replace(images, x=0.5 * images.x + rows.float())   # a bar marks the class
    tasks = finetuning.target_tasks(images, shots=2, budget=budget, ways=3, queries=4, count=4)
    torch.manual_seed(0)
    theta = ConvNet(8, width=W).eval()
    whole = finetuning.compare(theta, tasks, ["fine-tune"], budget, progress=False)["fine-tune"]
    parts = [finetuning.compare(theta, tasks[:2], ["fine-tune"], budget, progress=False),
             finetuning.compare(theta, tasks[2:], ["fine-tune"], budget, progress=False, first=2)]
    assert pooled(*(p["fine-tune"] for p in parts)).samples == whole.samples
    assert len(set(whole.samples)) > 1   # the tasks score differently: the test can tell them apart
    curve = finetuning.transfer_by_depth(theta, tasks, budget, frozen=True)
    assert len(curve) == len(theta.blocks) + 1 and len(set(curve[0].samples)) > 1
    ends = [finetuning.transfer_by_depth(theta, tasks[:2], budget, frozen=True, depths=(0, 4)),
            finetuning.transfer_by_depth(theta, tasks[2:], budget, frozen=True, depths=(0, 4), first=2)]
    for i, n in enumerate((0, 4)):
        assert pooled(ends[0][i], ends[1][i]).samples == curve[n].samples
    unseeded = finetuning.transfer_by_depth(theta, tasks[2:], budget, frozen=True, depths=(0,))
    assert unseeded[0].samples != curve[0].samples[2:]
    with pytest.raises(ValueError, match="cannot copy 5"):
        finetuning.transfer_by_depth(theta, tasks, budget, frozen=True, depths=(5,))


def test_tune_only_takes_its_steps(tiny_budget, monkeypatch):
    """checks that tune_only runs ``steps`` gradient steps when given, budget.finetune_steps
    otherwise."""
    seen = []
    real_fit = finetuning.fit
    monkeypatch.setattr(finetuning, "fit", lambda *a, **k: seen.append(a[3]) or real_fit(*a, **k))
    source = toy_images(classes=4)
    x, y = source.x[:20], source.y[:20]
    finetuning.tune_only(ConvNet(4, width=W), (x, y), (x, y), ("head",), tiny_budget)
    finetuning.tune_only(ConvNet(4, width=W), (x, y), (x, y), ("head",), tiny_budget, steps=7)
    assert seen == [tiny_budget.finetune_steps, 7]
