"""The episode sampler: N-way K-shot support 𝒟ᵗʳ and query 𝒟ᵗˢ sets."""
import pytest
import torch

from course_lib.data import ImageSet
from course_lib.episodes import Episode, EpisodeSampler, split_classes


def toy_data(classes: int = 12, per_class: int = 20) -> ImageSet:
    """Image i is the constant i (so an image identifies its example), label i // per_class."""
    n = classes * per_class
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 28, 28).clone()
    return ImageSet(x, torch.arange(classes).repeat_interleave(per_class), classes, "toy")


def example_ids(x: torch.Tensor) -> torch.Tensor:
    """Invert toy_data: the index of each image."""
    return x[:, 0, 0, 0].long()


def same_episode(a: Episode, b: Episode) -> bool:
    return all(torch.equal(s, t) for s, t in zip(
        (a.support_x, a.support_y, a.query_x, a.query_y, a.classes),
        (b.support_x, b.support_y, b.query_x, b.query_y, b.classes)))


# ---------------------------------------------------------------------------- split_classes
def test_split_classes_disjoint_and_sized():
    """checks that the groups have the asked sizes, are disjoint and lie in 0…classes−1."""
    train, val, test = split_classes(100, [60, 15, 25], seed=1)
    assert (len(train), len(val), len(test)) == (60, 15, 25)
    together = torch.cat([train, val, test])
    assert len(together.unique()) == 100
    assert together.min() >= 0 and together.max() < 100


def test_split_classes_seeded():
    """checks that a split is fixed by its seed and changes with it."""
    a, b, c = (split_classes(50, [30, 20], seed=s) for s in (0, 0, 1))
    assert all(torch.equal(s, t) for s, t in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_split_classes_too_many():
    """checks a clear ValueError when the groups ask for more classes than there are."""
    with pytest.raises(ValueError, match="12 classes out of 10"):
        split_classes(10, [7, 5])


# ---------------------------------------------------------------------------- sampler
@pytest.mark.parametrize("ways, shots, queries", [(5, 1, 15), (3, 5, 2), (1, 1, 1), (12, 10, 10)])
def test_episode_counts(ways, shots, queries):
    """checks ways·shots support, ways·queries query examples and labels 0…ways−1 each K (Q) times."""
    data = toy_data()
    episode = EpisodeSampler(data, ways=ways, shots=shots, queries=queries, seed=0).sample()
    assert episode.support_x.shape == (ways * shots, 1, 28, 28)
    assert episode.query_x.shape == (ways * queries, 1, 28, 28)
    assert torch.equal(episode.support_y, torch.arange(ways).repeat_interleave(shots))
    assert torch.equal(episode.query_y, torch.arange(ways).repeat_interleave(queries))
    assert (episode.ways, episode.shots) == (ways, shots)
    assert len(episode.classes.unique()) == ways


def test_labels_match_the_classes():
    """checks that relabelled label j is data set class classes[j], in support and query."""
    data = toy_data()
    sampler = EpisodeSampler(data, ways=4, shots=3, queries=5, seed=2)
    for _ in range(20):
        e = sampler.sample()
        for x, y in ((e.support_x, e.support_y), (e.query_x, e.query_y)):
            assert torch.equal(data.y[example_ids(x)], e.classes[y])


def test_support_and_query_disjoint():
    """checks that no example is both in the support and the query set of an episode."""
    sampler = EpisodeSampler(toy_data(), ways=5, shots=5, queries=15, seed=0)
    for _ in range(50):
        e = sampler.sample()
        support, query = set(example_ids(e.support_x).tolist()), set(example_ids(e.query_x).tolist())
        assert len(support) == 25 and len(query) == 75 and not support & query


def test_classes_only_from_the_split():
    """checks that episodes use only the sampler's classes, and over many episodes all of them."""
    data = toy_data()
    train, test = split_classes(12, [8, 4], seed=0)
    sampler = EpisodeSampler(data, train, ways=3, shots=1, queries=1, seed=0)
    seen = set()
    for _ in range(100):
        e = sampler.sample()
        seen |= set(e.classes.tolist())
        seen |= set(data.y[example_ids(e.support_x)].tolist()) | set(
            data.y[example_ids(e.query_x)].tolist())
    assert seen == set(train.tolist())


def test_classes_default_to_all_of_the_data():
    """checks that without classes the sampler uses every class of the data: the same episodes
    as an explicit torch.arange(data.classes), passed positionally as released notebooks do."""
    data = toy_data()
    default = EpisodeSampler(data, ways=5, shots=1, queries=5, seed=4)
    explicit = EpisodeSampler(data, torch.arange(data.classes), 5, 1, 5, seed=4)
    assert torch.equal(default.classes, torch.arange(12))
    assert all(same_episode(default.sample(), explicit.sample()) for _ in range(10))


def test_ways_and_shots_are_required():
    """checks a clear TypeError that names what is missing when ways or shots is not given."""
    for kwargs, missing in [({"shots": 1}, "ways"), ({"ways": 5}, "shots"), ({}, "ways and shots")]:
        with pytest.raises(TypeError, match=f"EpisodeSampler needs {missing} "):
            EpisodeSampler(toy_data(), **kwargs)
    with pytest.raises(TypeError, match="EpisodeSampler needs shots "):
        EpisodeSampler(toy_data(), torch.arange(12), 5)  # positional, as released notebooks call it


def test_seeded_stream():
    """checks that the same seed gives identical episodes and a different seed different ones."""
    data = toy_data()
    a, b, c = (EpisodeSampler(data, ways=5, shots=1, queries=5, seed=s) for s in (7, 7, 8))
    stream_a = [a.sample() for _ in range(5)]
    stream_b = [b.sample() for _ in range(5)]
    stream_c = [c.sample() for _ in range(5)]
    assert all(same_episode(s, t) for s, t in zip(stream_a, stream_b))
    assert not all(same_episode(s, t) for s, t in zip(stream_a, stream_c))
    assert not same_episode(stream_a[0], stream_a[1])  # a stream, not one episode repeated


def test_iter_is_the_same_stream():
    """checks that iterating a sampler yields the episodes sample() would."""
    data = toy_data()
    it = iter(EpisodeSampler(data, ways=2, shots=1, queries=1, seed=3))
    direct = EpisodeSampler(data, ways=2, shots=1, queries=1, seed=3)
    assert all(same_episode(next(it), direct.sample()) for _ in range(3))


def test_unseeded_global_rng_does_not_matter():
    """checks that the sampler uses its own generator, not torch's global one."""
    data = toy_data()
    torch.manual_seed(0)
    a = EpisodeSampler(data, ways=5, shots=1, queries=5, seed=1).sample()
    torch.manual_seed(123)
    b = EpisodeSampler(data, ways=5, shots=1, queries=5, seed=1).sample()
    assert same_episode(a, b)


def test_episode_to():
    """checks that moving an episode to a device keeps every tensor."""
    e = EpisodeSampler(toy_data(), ways=2, shots=1, queries=1).sample()
    assert same_episode(e, e.to("cpu"))


def test_too_many_ways():
    """checks a clear ValueError when N exceeds the split's classes."""
    with pytest.raises(ValueError, match="6-way episodes need at least 6 classes, the split has 5"):
        EpisodeSampler(toy_data(), torch.arange(5), ways=6, shots=1)


def test_too_many_examples():
    """checks a clear ValueError when K + queries exceeds the examples of a class."""
    with pytest.raises(ValueError, match="shots \\+ queries = 21 exceeds the 20 examples"):
        EpisodeSampler(toy_data(), ways=5, shots=1, queries=20)
    EpisodeSampler(toy_data(), ways=5, shots=1, queries=19)  # exactly fits


def test_smallest_class_decides():
    """checks that the limit is the smallest class of the split, not of the data set."""
    data = toy_data(classes=3, per_class=10)
    keep = torch.cat([torch.arange(0, 10), torch.arange(10, 14), torch.arange(20, 30)])
    uneven = ImageSet(data.x[keep], data.y[keep], 3, "uneven")  # class 1 has only 4 examples
    with pytest.raises(ValueError, match="exceeds the 4 examples"):
        EpisodeSampler(uneven, ways=2, shots=2, queries=3)
    EpisodeSampler(uneven, torch.tensor([0, 2]), ways=2, shots=2, queries=3)


@pytest.mark.data
def test_omniglot_episodes(omniglot_evaluation):
    """checks 20-way 1-shot episodes on real Omniglot: shapes, and images of the right classes."""
    sampler = EpisodeSampler(omniglot_evaluation, ways=20, shots=1, queries=19, seed=0)
    e = sampler.sample()
    assert e.support_x.shape == (20, 1, 28, 28) and e.query_x.shape == (380, 1, 28, 28)
    # every support image is one of its class's 20 drawings
    for j, c in enumerate(e.classes.tolist()):
        drawings = omniglot_evaluation.x[c * 20:(c + 1) * 20]
        assert (drawings == e.support_x[j]).flatten(1).all(1).any()
