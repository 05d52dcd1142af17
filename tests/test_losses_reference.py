"""The reference BCE objective on logits equals Sigmoid + BCELoss, and the registry reports bad names."""

from __future__ import annotations

import pytest
import torch

from cgan_lightning.losses import bce_d_loss, bce_g_loss, get_loss


def test_bce_losses_match_sigmoid_bceloss() -> None:
    real, fake = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([-3.0, 0.0, 1.5])
    bce = torch.nn.BCELoss()
    expected_d = (bce(real.sigmoid(), torch.ones(3)) + bce(fake.sigmoid(), torch.zeros(3))) / 2
    assert torch.allclose(bce_d_loss(real, fake), expected_d)
    assert torch.allclose(bce_g_loss(fake), bce(fake.sigmoid(), torch.ones(3)))


def test_bce_is_stable_for_large_logits() -> None:
    assert torch.isfinite(bce_g_loss(torch.tensor([-200.0])))
    assert bce_g_loss(torch.tensor([-200.0])).item() == pytest.approx(200.0)


def test_unknown_loss_name_lists_choices() -> None:
    with pytest.raises(ValueError, match="unknown loss 'nope'.*bce"):
        get_loss("nope")
