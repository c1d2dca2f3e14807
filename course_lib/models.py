"""The networks of the course, written so that ``torch.func.functional_call`` works on them.

- :class:`ConvNet`: the 4-block conv net of the few-shot literature (Vinyals et al. 2016,
  Finn et al. 2017): each block is conv 3×3 → batch norm → ReLU → 2×2 max-pool; on 28×28
  inputs the four blocks give a ``width``-dimensional feature vector, then a linear head.
- :class:`MLP`: fully connected ReLU network (the MAML paper's 40-40 regression net).

Parameters are named ``blocks.{i}.…`` and ``head.…`` so that a transfer recipe can address
"the first n blocks" or "the head" by name.
"""
from __future__ import annotations

import torch
from torch import nn


def conv_block(in_channels: int, out_channels: int, batch_stats: bool = False) -> nn.Sequential:
    """conv 3×3 → batch norm → ReLU → 2×2 max-pool.

    The modules run the pooling before the ReLU: max(ReLU(a), ReLU(b)) = ReLU(max(a, b)), so
    the block computes the same function with the same gradients (the tests check they are
    bit for bit equal), while the ReLU and its backward touch a quarter of the values; on a
    CPU this makes training the channels-last net about 1.4× faster.

    ``batch_stats=True`` normalises with the current batch's statistics always (no running
    averages), as MAML's reference implementation does; the block then has no buffers and is a
    pure function of its parameters, which ``torch.func`` transforms need.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels, track_running_stats=not batch_stats),
        nn.MaxPool2d(2),
        nn.ReLU(),
    )


class ConvNet(nn.Module):
    """4-block conv net f_θ: (n, 1, 28, 28) → (n, outputs) logits.

    Args:
        outputs: number of classes of the head (0: no head, forward returns features).
        width: channels of every block (64 in the papers, 32 for a laptop).
        in_channels: 1 for Omniglot / MNIST.
        depth: number of conv blocks.
        batch_stats: batch norm always uses batch statistics (for MAML; see :func:`conv_block`).

    Without ``batch_stats`` the weights are stored channels-last (NHWC), so the feature maps
    are too: on a CPU, training and evaluating these small maps is about 1.4× faster (a
    fine-tuning run of notebook 01a: 48 s → 33 s), and the function is unchanged. MAML's
    network (``batch_stats=True``) stays NCHW: its second-order step is slower channels-last
    (see :class:`course_lib.maml.TaskBatch`).
    """

    def __init__(self, outputs: int, width: int = 32, in_channels: int = 1, depth: int = 4,
                 batch_stats: bool = False):
        super().__init__()
        self.width = width
        self.blocks = nn.Sequential(*(conv_block(in_channels if i == 0 else width, width,
                                                 batch_stats) for i in range(depth)))
        self.head = nn.Linear(width, outputs) if outputs else nn.Identity()
        if not batch_stats:
            self.to(memory_format=torch.channels_last)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Embedding of x: (n, 1, 28, 28) → (n, width)."""
        return self.blocks(x).flatten(1)  # (n, width, 1, 1) → (n, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def reset_head(self, outputs: int) -> None:
        """Replace the head by a freshly initialised one with ``outputs`` classes."""
        self.head = nn.Linear(self.width, outputs).to(next(self.parameters()).device)


class MLP(nn.Module):
    """Fully connected ReLU network: (n, inputs) → (n, outputs).

    Args:
        inputs: input dimension (1 for sinusoid regression).
        hidden: sizes of the hidden layers, e.g. (40, 40) as in the MAML paper.
        outputs: output dimension.
    """

    def __init__(self, inputs: int, hidden: tuple[int, ...] = (40, 40), outputs: int = 1):
        super().__init__()
        sizes = (inputs, *hidden)
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Linear(sizes[-1], outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
