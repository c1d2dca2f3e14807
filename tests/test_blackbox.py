"""Black-box meta-learning: the sequence format, the query-only loss, the readers' dependence
structure (against hand-unrolled oracles), encoders, determinism and error messages."""
import math
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import blackbox as bb
from course_lib.data import ImageSet
from course_lib.episodes import EpisodeSampler
from course_lib.models import ConvNet
from course_lib.plots import running_mean

D = 6  # feature size of the toy inputs


def toy_features(classes: int = 12, per_class: int = 10, seed: int = 0) -> ImageSet:
    """Well-separated Gaussian clusters in D dimensions, ``per_class`` examples per class."""
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(classes, D, generator=g)
    y = torch.arange(classes).repeat_interleave(per_class)
    return ImageSet(centres[y] + 0.5 * torch.randn(len(y), D, generator=g), y, classes, "toy")


def toy_episode(ways: int = 3, shots: int = 2, queries: int = 4, seed: int = 0):
    return EpisodeSampler(toy_features(), ways=ways, shots=shots, queries=queries, seed=seed).sample()


READERS = {"lstm": lambda n: bb.LSTMReader(D, n, hidden=16),
           "attention": lambda n: bb.AttentionReader(D, n, dim=16, heads=2)}


def toy_model(kind: str, ways: int = 3, seed: int = 0) -> bb.BlackBox:
    torch.manual_seed(seed)
    return bb.BlackBox(nn.Identity(), READERS[kind](ways)).eval()


def logits_of(model, seq: bb.EpisodeSequence) -> torch.Tensor:
    """(T, N) logits of one sequence."""
    with torch.no_grad():
        return model(seq.x[None], seq.labels[None], seq.support_size)[0]


# ---------------------------------------------------------------------------- sequence format
def test_support_order_is_shot_major():
    """checks that position k·N + n holds shot k of class n, whatever order the support came in."""
    assert bb.support_order(torch.tensor([0, 0, 1, 1, 2, 2])).tolist() == [0, 2, 4, 1, 3, 5]
    y = torch.tensor([2, 0, 1, 0, 2, 1])
    order = bb.support_order(y)
    assert y[order].tolist() == [0, 1, 2, 0, 1, 2]
    assert order.tolist() == [1, 2, 0, 3, 5, 4]  # within a class the given order is kept


def test_to_sequence_format():
    """checks shapes, support first in fixed order with one-hot labels, zeroed and shuffled queries
    whose returned labels stay aligned with their inputs."""
    e = toy_episode(ways=3, shots=2, queries=5)
    seq = bb.to_sequence(e.support_x, e.support_y, e.query_x, e.query_y,
                         generator=torch.Generator().manual_seed(1))
    s, q = 6, 15
    assert seq.support_size == s
    assert seq.x.shape == (s + q, D) and seq.labels.shape == (s + q, 3)
    assert seq.query_y.shape == (q,)
    order = bb.support_order(e.support_y)
    assert torch.equal(seq.x[:s], e.support_x[order])
    assert torch.equal(seq.labels[:s], F.one_hot(e.support_y[order], 3).float())
    assert seq.labels[:s].argmax(1).tolist() == [0, 1, 2, 0, 1, 2]
    assert torch.all(seq.labels[s:] == 0)  # the query labels are never shown
    assert sorted(seq.order.tolist()) == list(range(q))
    assert not torch.equal(seq.order, torch.arange(q))  # shuffled
    assert torch.equal(seq.x[s:], e.query_x[seq.order])
    assert torch.equal(seq.query_y, e.query_y[seq.order])


def test_to_sequence_is_a_pure_function_of_its_generator():
    """checks that the same generator seed gives the same sequence, another seed another shuffle."""
    e = toy_episode(queries=5)
    a, b, c = (bb.to_sequence(e.support_x, e.support_y, e.query_x, e.query_y,
                              generator=torch.Generator().manual_seed(seed)) for seed in (3, 3, 4))
    assert torch.equal(a.x, b.x) and torch.equal(a.order, b.order)
    assert not torch.equal(a.order, c.order)
    assert torch.equal(a.x[:a.support_size], c.x[:c.support_size])  # the support never moves


def test_to_sequence_images_and_wider_label_input():
    """checks the format on image inputs and a one-hot wider than the episode's N."""
    x = torch.rand(6, 1, 28, 28)
    seq = bb.to_sequence(x[:4], torch.tensor([0, 1, 0, 1]), x[4:], ways=5)
    assert seq.x.shape == (6, 1, 28, 28) and seq.labels.shape == (6, 5) and seq.query_y is None
    assert seq.labels[:4].argmax(1).tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize("change, argument", [
    (dict(support_x=torch.rand(6, 1, D)), "support_x"),
    (dict(support_y=torch.tensor([0, 0, 0, 1, 1, 2])), "support_y"),
    (dict(support_y=torch.zeros(6, 1, dtype=torch.long)), "support_y"),
    (dict(query_x=torch.rand(4, D + 1)), "query_x"),
    (dict(query_y=torch.zeros(3, dtype=torch.long)), "query_y"),
    (dict(ways=2), "ways"),
])
def test_to_sequence_errors_name_the_argument(change, argument):
    """checks that wrong shapes or labels raise a ValueError that names the argument."""
    args = dict(support_x=torch.rand(6, D), support_y=torch.tensor([0, 0, 1, 1, 2, 2]),
                query_x=torch.rand(4, D), query_y=torch.zeros(4, dtype=torch.long), ways=None)
    args.update(change)
    with pytest.raises(ValueError, match=argument):
        bb.to_sequence(**args)


# ---------------------------------------------------------------------------- the loss
def test_query_loss_uses_query_positions_only():
    """checks ℒ against a hand-computed −mean log p(yᵗˢ) and that support logits do not matter."""
    torch.manual_seed(0)
    logits, query_y, s = torch.randn(2, 7, 3), torch.randint(0, 3, (2, 4)), 3
    loss = bb.query_loss(logits, query_y, s)
    log_p = logits.log_softmax(-1)
    oracle = -sum(log_p[b, s + j, query_y[b, j]] for b in range(2) for j in range(4)) / 8
    assert loss.item() == pytest.approx(oracle.item(), rel=1e-6)
    changed = logits.clone()
    changed[:, :s] += 10 * torch.randn(2, s, 3)  # any support-position logits
    assert bb.query_loss(changed, query_y, s).item() == loss.item()
    changed[1, s + 2, 0] += 1.0  # one query-position logit
    assert bb.query_loss(changed, query_y, s).item() != loss.item()
    assert bb.query_loss(torch.zeros(2, 7, 3), query_y, s).item() == pytest.approx(math.log(3))


def test_query_loss_shape_errors():
    """checks that mismatched logits and query labels raise ValueErrors naming them."""
    with pytest.raises(ValueError, match="logits"):
        bb.query_loss(torch.randn(7, 3), torch.zeros(4, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="query_y"):
        bb.query_loss(torch.randn(2, 7, 3), torch.zeros(2, 5, dtype=torch.long), 3)


# ---------------------------------------------------------------------------- readers
@pytest.mark.parametrize("kind", READERS)
def test_a_query_depends_on_the_support_and_itself_only(kind):
    """checks yᵗˢⱼ = f_θ(𝒟ᵗʳ, xᵗˢⱼ): other queries' inputs leave query j's logits unchanged,
    its own input and the support set change them."""
    model = toy_model(kind)
    e = toy_episode(queries=3)
    seq = bb.to_sequence(e.support_x, e.support_y, e.query_x, e.query_y)
    s, base = seq.support_size, logits_of(model, seq)
    others = bb.EpisodeSequence(seq.x.clone(), seq.labels, seq.query_y, seq.order, s)
    others.x[s + 1:] = torch.randn_like(others.x[s + 1:])  # every query but the first
    after = logits_of(model, others)
    torch.testing.assert_close(after[:s + 1], base[:s + 1])  # the support and query 0: same
    assert not torch.allclose(after[s + 1:], base[s + 1:])
    support = bb.EpisodeSequence(seq.x.clone(), seq.labels, seq.query_y, seq.order, s)
    support.x[0] += 1.0
    assert not torch.allclose(logits_of(model, support)[s:], base[s:])


def test_lstm_reader_against_a_hand_unrolled_lstm():
    """checks the LSTM reader against LSTM cell equations unrolled by hand: the memory is the
    state after the support set, and each query is one more step from it."""
    model = toy_model("lstm")
    lstm, head = model.reader.lstm, model.reader.head
    e = toy_episode(queries=2)
    seq = bb.to_sequence(e.support_x, e.support_y, e.query_x, e.query_y)
    inputs = torch.cat([seq.x, seq.labels], -1)  # (T, D + N)

    def cell(x, h, c):
        gates = lstm.weight_ih_l0 @ x + lstm.bias_ih_l0 + lstm.weight_hh_l0 @ h + lstm.bias_hh_l0
        i, f, g, o = gates.chunk(4)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    h = c = torch.zeros(lstm.hidden_size)
    oracle = []
    with torch.no_grad():
        for x in inputs[:seq.support_size]:
            h, c = cell(x, h, c)
            oracle.append(head(h))
        for x in inputs[seq.support_size:]:
            oracle.append(head(cell(x, h, c)[0]))  # from the memory, not from the last query
    torch.testing.assert_close(logits_of(model, seq), torch.stack(oracle))


def test_sequential_lstm_reader_is_causal():
    """checks the homework's reading order against the LSTM run over the whole sequence: query j
    depends on the queries before it, never on those after it."""
    torch.manual_seed(0)
    reader = bb.LSTMReader(D, 3, hidden=16, sequential=True).eval()
    model = bb.BlackBox(nn.Identity(), reader)
    e = toy_episode(queries=2)
    seq = bb.to_sequence(e.support_x, e.support_y, e.query_x, e.query_y)
    base = logits_of(model, seq)
    with torch.no_grad():
        oracle = reader.head(reader.lstm(torch.cat([seq.x, seq.labels], -1)[None])[0][0])
    torch.testing.assert_close(base, oracle)
    s, j = seq.support_size, 3
    later = bb.EpisodeSequence(seq.x.clone(), seq.labels, seq.query_y, seq.order, s)
    later.x[s + j] += 1.0  # change query j
    after = logits_of(model, later)
    torch.testing.assert_close(after[:s + j], base[:s + j])  # everything before it: unchanged
    assert not torch.allclose(after[s + j + 1:], base[s + j + 1:])  # the queries after it: changed


def test_reads_support_mask():
    """checks the mask: every position sees the support set and itself, nothing else."""
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 0, 1]])
    assert torch.equal(bb.reads_support(4, 2), expected.bool())


def test_attention_block_against_explicit_softmax():
    """checks one attention block against softmax(q kᵀ/√d) with masked scores set to −∞."""
    torch.manual_seed(0)
    block = bb.AttentionBlock(8, heads=2)
    z, allowed = torch.randn(1, 5, 8), bb.reads_support(5, 3)
    qkv = block.qkv(block.norm1(z))[0]  # (T, 3·8)
    heads = []
    for hd in range(2):
        q, k, v = (qkv[:, part * 8 + hd * 4: part * 8 + hd * 4 + 4] for part in range(3))
        scores = (q @ k.T / 2.0).masked_fill(~allowed, float("-inf"))  # √(8/2) = 2
        heads.append(scores.softmax(-1) @ v)
    after_attention = z[0] + block.out(torch.cat(heads, -1))
    oracle = after_attention + block.mlp(block.norm2(after_attention))
    torch.testing.assert_close(block(z, allowed)[0], oracle)


def test_attention_reader_reads_the_support_as_a_set():
    """checks that permuting the support pairs (input with its label) leaves the queries'
    logits unchanged: the attention reader has no positional encoding."""
    model = toy_model("attention")
    e = toy_episode(queries=2)
    seq = bb.to_sequence(e.support_x, e.support_y, e.query_x, e.query_y)
    s = seq.support_size
    perm = torch.randperm(s, generator=torch.Generator().manual_seed(0))
    moved = bb.EpisodeSequence(torch.cat([seq.x[perm], seq.x[s:]]),
                               torch.cat([seq.labels[perm], seq.labels[s:]]),
                               seq.query_y, seq.order, s)
    torch.testing.assert_close(logits_of(model, moved)[s:], logits_of(model, seq)[s:])


def test_blackbox_shape_errors():
    """checks that the model names the argument whose shape is wrong."""
    model = toy_model("lstm")
    x, labels = torch.randn(2, 9, D), torch.zeros(2, 9, 3)
    with pytest.raises(ValueError, match="x must"):
        model(torch.randn(9, D), labels, 6)
    with pytest.raises(ValueError, match="labels"):
        model(x, torch.zeros(2, 8, 3), 6)
    with pytest.raises(ValueError, match="support_size"):
        model(x, labels, 9)
    with pytest.raises(ValueError, match="heads"):
        bb.AttentionReader(D, 3, dim=10, heads=4)


# ---------------------------------------------------------------------------- encoders
def test_encoder_on_images_equals_reader_on_embedded_features():
    """checks that f_θ with a frozen, standardised conv encoder on images gives the logits of the
    same reader on features computed once by embed — the shortcut meta-training takes."""
    torch.manual_seed(0)
    theta = ConvNet(5, width=8)
    images = ImageSet(torch.rand(40, 1, 28, 28), torch.arange(4).repeat_interleave(10), 4, "toy")
    encoder = bb.frozen_encoder(theta)
    raw = bb.embed(images, encoder).x  # (40, 8)
    scale = bb.Standardize(raw)
    features = bb.embed(images, nn.Sequential(encoder, scale))
    assert features.x.shape == (40, 8)
    live = raw.std(0) > 0  # an untrained ReLU net has dead features; they stay at zero
    assert live.sum() >= 2
    torch.testing.assert_close(features.x.mean(0), torch.zeros(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(features.x.std(0)[live], torch.ones(int(live.sum())),
                               atol=1e-5, rtol=0)
    reader = bb.AttentionReader(8, 2, dim=16, heads=2).eval()
    support, labels, query = [0, 10, 1, 11], torch.tensor([0, 1, 0, 1]), [2, 12]
    seq_images = bb.to_sequence(images.x[support], labels, images.x[query])
    seq_features = bb.to_sequence(features.x[support], labels, features.x[query])
    on_images = logits_of(bb.BlackBox(nn.Sequential(encoder, scale), reader), seq_images)
    on_features = logits_of(bb.BlackBox(nn.Identity(), reader), seq_features)
    torch.testing.assert_close(on_images, on_features)


def test_meta_train_leaves_a_frozen_encoder_alone():
    """checks that meta-training on images with a frozen pre-trained encoder changes the reader
    only: θ's weights and batch-norm statistics stay as they were."""
    torch.manual_seed(0)
    theta = ConvNet(5, width=4)
    images = ImageSet(torch.rand(60, 1, 28, 28), torch.arange(6).repeat_interleave(10), 6, "toy")
    model = bb.BlackBox(bb.frozen_encoder(theta), bb.LSTMReader(4, 2, hidden=8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bb.meta_train(model, EpisodeSampler(images, ways=2, shots=1, queries=2), steps=3,
                  meta_batch=2, progress=False)
    after = model.state_dict()
    for name, value in before.items():
        assert torch.equal(after[name], value) == name.startswith("encoder"), name
    assert not model.training


# ---------------------------------------------------------------------------- training
def toy_training(kind: str, steps: int, seed: int = 0):
    """Meta-train on 3-way 1-shot episodes of 60 toy classes (enough that memorising them fails)."""
    data = toy_features(classes=60)
    model = toy_model(kind, ways=3, seed=seed)
    sampler = EpisodeSampler(data, ways=3, shots=1, queries=2, seed=seed)
    history = bb.meta_train(model, sampler, steps, beta=1e-2, meta_batch=8, seed=seed,
                            val_sampler=EpisodeSampler(data, torch.arange(12), 3, 1, 2, seed=9),
                            val_every=steps, val_episodes=5, progress=False)
    return model, history


def test_meta_train_is_deterministic_under_a_seed(monkeypatch):
    """checks that the same seed gives the same losses and the same θ, another seed others, and
    that ``seconds`` times the steps but not the validation (sleeps injected into both)."""
    real_batch, real_evaluate = bb.sample_batch, bb.evaluate

    def slow_batch(*args, **kwargs):  # 5 steps: at least 0.05 s of training
        time.sleep(0.01)
        return real_batch(*args, **kwargs)

    def slow_evaluate(*args, **kwargs):  # one validation: 0.1 s that must not be counted
        time.sleep(0.1)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(bb, "sample_batch", slow_batch)
    monkeypatch.setattr(bb, "evaluate", slow_evaluate)
    start = time.perf_counter()
    m1, h1 = toy_training("attention", 5, 0)
    wall = time.perf_counter() - start
    (m2, h2), (_, h3) = (toy_training("attention", 5, seed) for seed in (0, 1))
    assert h1.loss == h2.loss and h1.accuracy == h2.accuracy and h1.val_acc == h2.val_acc
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p, q)
    assert h1.loss != h3.loss
    assert len(h1.loss) == len(h1.accuracy) == 5 and h1.val_step == [5]
    assert 5 * 0.01 <= h1.seconds <= wall - 0.1


@pytest.mark.parametrize("kind", READERS)
def test_meta_train_learns_a_toy_task_distribution(kind):
    """checks that meta-training takes the query loss well below chance (ln 3) and that the
    learned f_θ classifies episodes of new classes (other cluster centres) far above 1/3."""
    model, history = toy_training(kind, 300)
    assert sum(history.loss[-20:]) / 20 < 0.6 * math.log(3)
    test = EpisodeSampler(toy_features(seed=5), ways=3, shots=1, queries=5, seed=2)
    assert bb.evaluate(model, test, 20)[0] > 0.6


def test_learner_answers_in_the_order_of_query_x():
    """checks that the learner undoes the query shuffle: its answers equal the answers for each
    query asked on its own (a valid oracle, since queries do not affect each other)."""
    model = toy_model("lstm")
    e = toy_episode(queries=4)
    predicted = bb.learner(model, ways=3)(e.support_x, e.support_y, e.query_x)
    one_by_one = [bb.learner(model, ways=3)(e.support_x, e.support_y, x[None]).item()
                  for x in e.query_x]
    assert predicted.tolist() == one_by_one
    assert predicted.shape == (12,) and predicted.dtype == torch.long


def test_steps_at_chance():
    """checks the plateau length on hand-made accuracy curves."""
    history = bb.MetaHistory(accuracy=[0.2] * 100 + [0.9] * 100)
    # after step 102 the last 10 average 0.34 > 1/5 + 0.1; after step 101 only 0.27
    assert bb.steps_at_chance(history, ways=5, window=10) == 102
    assert bb.steps_at_chance(bb.MetaHistory(accuracy=[0.2] * 100), ways=5) is None


def test_running_mean():
    """checks the plotting helper's running mean against direct means."""
    v = [3.0, 1.0, 4.0, 1.0, 5.0]
    expected = [3.0, 2.0, 8 / 3, 2.0, 10 / 3]
    assert running_mean(v, 3).tolist() == pytest.approx(expected)


def test_attention_on_features_is_an_image_learner():
    """checks the recipe: θ untouched, a learner from images, one history entry per step."""
    torch.manual_seed(0)
    y = torch.arange(6).repeat_interleave(3)
    images = ImageSet(torch.randn(len(y), 1, 28, 28), y, 6, "tiny")
    theta = ConvNet(6, width=8)
    before = {k: v.clone() for k, v in theta.state_dict().items()}
    model, history = bb.attention_on_features(theta, images, ways=3, shots=1, steps=4,
                                              progress=False)
    assert len(history.loss) == 4
    assert all(torch.equal(before[k], v) for k, v in theta.state_dict().items())
    sampler = EpisodeSampler(images, ways=3, shots=1, queries=2, seed=0)
    e = sampler.sample()
    predicted = bb.learner(model, ways=3)(e.support_x, e.support_y, e.query_x)
    assert predicted.shape == (6,) and predicted.max() < 3
