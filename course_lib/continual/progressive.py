"""Progressive networks (Rusu et al. 2016): a new column per task, the earlier columns frozen.

:class:`ProgressiveNet` cannot forget by construction — every task keeps its own column — and
a new column still reuses the old ones' features through lateral connections; the price is
parameters that grow with the number of tasks T.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ProgressiveNet(nn.Module):
    """Progressive networks (Rusu et al. 2016), small form: one MLP column per task.

    Column k has hidden layers h_l^k and a head; from its second layer on, each layer also
    reads the previous layer of every earlier column through lateral weights U_l^{k:j}:

        h_l^k = ReLU(W_l^k h_{l−1}^k + Σ_{j<k} U_l^{k:j} h_{l−1}^j).

    :meth:`add_column` freezes every existing column, so old tasks cannot be forgotten by
    construction; the price is parameters that grow with T (quadratically, through U).

    Args:
        inputs: input size (784). hidden: widths of the hidden layers, e.g. (64, 64).
        outputs: logits of each column's head.
    """

    def __init__(self, inputs: int = 784, hidden: tuple[int, ...] = (64, 64), outputs: int = 10):
        super().__init__()
        self.sizes = (inputs, *hidden, outputs)
        self.columns = nn.ModuleList()   # columns[k][l]: W_l^k
        self.laterals = nn.ModuleList()  # laterals[k][l−1][j]: U_l^{k:j}, l ≥ 1
        self.add_column()

    def add_column(self) -> None:
        """Freeze the existing columns and add a fresh one with laterals from all of them."""
        for p in self.parameters():
            p.requires_grad_(False)
        k = len(self.columns)
        s = self.sizes
        self.columns.append(nn.ModuleList(nn.Linear(a, b) for a, b in zip(s[:-1], s[1:])))
        self.laterals.append(nn.ModuleList(
            nn.ModuleList(nn.Linear(s[l], s[l + 1], bias=False) for _ in range(k))
            for l in range(1, len(s) - 1)))

    def forward(self, x: torch.Tensor, task: int | None = None) -> torch.Tensor:
        """Logits of column ``task`` (default: the newest): (B, inputs) → (B, outputs)."""
        task = len(self.columns) - 1 if task is None else task
        if not 0 <= task < len(self.columns):
            raise ValueError(f"no column {task}: the network has {len(self.columns)}")
        h = [x.flatten(1)] * (task + 1)  # h[j]: the current layer's input in column j
        layers = len(self.sizes) - 1
        for l in range(layers):
            new = []
            for k in range(task + 1):
                z = self.columns[k][l](h[k])
                if l > 0:
                    z = z + sum(self.laterals[k][l - 1][j](h[j]) for j in range(k))
                new.append(F.relu(z) if l < layers - 1 else z)
            h = new
        return h[task]
