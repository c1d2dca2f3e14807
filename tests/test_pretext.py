"""Rotation prediction (Gidaris et al. 2018): the pretext task made from unlabelled images."""
import numpy as np
import pytest
import torch

from course_lib.data import ImageSet
from course_lib.pretext import rotation_task


def unlabelled(n: int = 64, size: int = 8, seed: int = 0) -> torch.Tensor:
    """Random images (n, 1, size, size); random pixels have no rotational symmetry."""
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


def test_type_shapes_and_labels():
    """checks an ImageSet of 4 classes, the input's shape and dtype, labels in 0..3."""
    x = unlabelled()
    task = rotation_task(x, seed=0, name="toy")
    assert isinstance(task, ImageSet)
    assert task.x.shape == x.shape and task.x.dtype == x.dtype
    assert task.y.shape == (len(x),) and task.y.dtype == torch.int64
    assert task.classes == 4
    assert task.name == "toy-rotations"
    assert int(task.y.min()) >= 0 and int(task.y.max()) <= 3
    assert len(task) == len(x)


def test_each_image_is_its_original_rotated_by_its_label():
    """checks every image against numpy's rot90 of the original, k = label quarter turns."""
    x = unlabelled(100)
    task = rotation_task(x, seed=1)
    for original, rotated, k in zip(x, task.x, task.y):
        expected = np.rot90(original[0].numpy(), int(k)).copy()  # counter-clockwise, as torch
        np.testing.assert_array_equal(rotated[0].numpy(), expected)


def test_quarter_turns_by_hand():
    """checks where a single inked top-left pixel of an H×H image goes for k = 0, 1, 2, 3."""
    size = 5
    x = torch.zeros(400, 1, size, size)
    x[:, 0, 0, 0] = 1.0
    task = rotation_task(x, seed=2)
    corner = {0: (0, 0), 1: (size - 1, 0), 2: (size - 1, size - 1), 3: (0, size - 1)}
    for image, k in zip(task.x, task.y):
        (row, col), = torch.nonzero(image[0]).tolist()
        assert (row, col) == corner[int(k)]
    assert set(task.y.tolist()) == {0, 1, 2, 3}


def test_rotation_keeps_the_pixels_and_the_input():
    """checks that rotation only permutes pixels and leaves the unlabelled tensor unchanged."""
    x = unlabelled(32)
    before = x.clone()
    task = rotation_task(x, seed=3)
    assert torch.equal(x, before)
    torch.testing.assert_close(task.x.flatten(1).sort(1).values, x.flatten(1).sort(1).values,
                               rtol=0, atol=0)
    keep = task.y == 0
    assert torch.equal(task.x[keep], x[keep])  # k = 0 is the identity
    turned = task.y != 0
    assert not torch.equal(task.x[turned], x[turned])


def test_deterministic_under_seed():
    """checks the same seed gives the same task and another seed other labels."""
    x = unlabelled(200)
    a, b = rotation_task(x, seed=5), rotation_task(x, seed=5)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    c = rotation_task(x, seed=6)
    assert not torch.equal(a.y, c.y)
    # the global RNG plays no part
    torch.manual_seed(123)
    d = rotation_task(x, seed=5)
    assert torch.equal(a.y, d.y)


@pytest.mark.parametrize("seed", [0, 1])
def test_labels_are_roughly_balanced(seed):
    """checks each of the 4 rotations gets 1/4 of n = 4000 images within ±4 standard deviations."""
    n = 4000
    task = rotation_task(torch.zeros(n, 1, 2, 2), seed=seed)
    counts = torch.bincount(task.y, minlength=4)
    sd = (n * 0.25 * 0.75) ** 0.5  # binomial standard deviation ≈ 27
    assert counts.sum() == n
    assert torch.all((counts - n / 4).abs() < 4 * sd), counts
