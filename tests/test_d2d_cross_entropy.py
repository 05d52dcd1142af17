"""benchmarks/d2d_cross_entropy.py: the D2D-CE probe's loss against hand computations."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from conftest import benchmark_module

TEMPERATURE, M_P = 0.5, 0.98


def _d2d() -> Any:
    return benchmark_module("d2d_cross_entropy").d2d_cross_entropy


def test_samples_at_their_proxies_and_apart_leave_only_the_softmax_floor() -> None:
    eye = torch.eye(2, requires_grad=True)
    loss = _d2d()(eye, torch.eye(2), torch.tensor([0, 1]), TEMPERATURE, M_P)
    # positive term 0 (cosine 1 >= m_p), the one negative clipped to 0: -log(e^0 / (e^0 + e^0)) = log 2
    assert loss.item() == pytest.approx(math.log(2))
    loss.backward()
    assert eye.grad is not None and torch.count_nonzero(eye.grad) == 0  # easy pairs give no gradient


def test_a_sample_far_from_its_proxy_pays_the_positive_term() -> None:
    # each sample orthogonal to its proxy: positive m_p / T = 1.96 each, the negative still clipped to 0
    loss = _d2d()(torch.eye(2), torch.eye(2).flip(0), torch.tensor([0, 1]), TEMPERATURE, M_P)
    positive = M_P / TEMPERATURE
    assert loss.item() == pytest.approx(positive + math.log(math.exp(-positive) + 1.0), rel=1e-6)


def test_samples_of_the_same_class_are_not_negatives() -> None:
    # two identical samples of one class at their proxy: no negative remains, so the loss is 0; were the pair
    # counted as negatives (cosine 1 > 1 - m_p) it would add log(1 + e^((1 - (1 - m_p)) / T)) per sample
    same = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert _d2d()(same, same, torch.tensor([3, 3]), TEMPERATURE, M_P).item() == pytest.approx(0.0, abs=1e-7)
