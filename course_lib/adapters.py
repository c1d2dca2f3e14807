"""Low-rank adapters (LoRA, Hu et al. 2021) on frozen convolution weights.

A frozen weight W (out × in·k·k once flattened) is used as W + (α/r) · B A with trainable
B: (out × r), A: (r × in·k·k). B starts at zero, so the adapted network starts exactly as θ;
the number of trained weights grows with the rank r instead of with W. Used by
``notebooks/01c_transfer_taxonomy`` (the assignment ``transfer`` asks for the linear version).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .finetuning import set_trainable


class LowRankConv2d(nn.Module):
    """``conv`` with its weight frozen and a trainable rank-``rank`` update B A."""

    def __init__(self, conv: nn.Conv2d, rank: int, alpha: float = 1.0):
        super().__init__()
        self.conv = conv
        for p in conv.parameters():
            p.requires_grad_(False)
        fan_in = conv.weight[0].numel()  # (in / groups) · k · k
        self.A = nn.Parameter(torch.randn(rank, fan_in) / fan_in ** 0.5)
        self.B = nn.Parameter(torch.zeros(conv.out_channels, rank))
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta = (self.B @ self.A).view_as(self.conv.weight)  # (out, in, k, k)
        # W + (α/r)·BA laid out exactly as W (ConvNet stores it channels-last), so that the
        # convolution runs as θ's does and φ starts with θ's features to the last bit
        weight = torch.empty_like(self.conv.weight).copy_(self.conv.weight + self.scale * delta)
        # the wrapped conv's own forward: keeps its stride, padding (mode), dilation and groups
        return self.conv._conv_forward(x, weight, self.conv.bias)


def with_adapters(theta: nn.Module, rank: int, ways: int) -> nn.Module:
    """A copy of θ with a rank-r adapter on every block's conv and a new ``ways``-class head.

    Only the adapters (A, B) and the head are trainable; θ's weights and batch-norm statistics
    stay frozen.
    """
    model = copy.deepcopy(theta)
    model.reset_head(ways)
    set_trainable(model, ("head",))
    for block in model.blocks:
        block[0] = LowRankConv2d(block[0], rank)
    return model
