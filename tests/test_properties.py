"""Property test: whatever labels and latents a user passes, ``sample`` / ``forward`` return valid images or raise
``ValueError`` (never ``IndexError``, ``RuntimeError``, ``TypeError``...).

The expected outcome is computed here from the input alone, independently of cgan_lightning.validation.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cgan_lightning import ConditionalGAN, MLPDiscriminator, MLPGenerator

NUM_CLASSES = 10
LATENT_DIM = 4
INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
OTHER_DTYPES = (torch.float16, torch.float32, torch.float64, torch.bool, torch.complex64)
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _tiny(**kwargs: Any) -> ConditionalGAN:
    torch.manual_seed(0)
    return ConditionalGAN(num_classes=NUM_CLASSES, latent_dim=LATENT_DIM,
                          generator=partial(MLPGenerator, hidden_dims=(8, 16)),
                          discriminator=partial(MLPDiscriminator, hidden_dims=(8,)), **kwargs)


MODELS = {"raw": _tiny(), "ema": _tiny(ema_decay=0.9)}  # sample() goes through the EMA copy for the second


@st.composite
def label_inputs(draw: st.DrawFn) -> tuple[object, int, bool]:
    """``(labels, batch_size, valid)`` for tensors, lists, scalars and things that are not labels at all."""
    kind = draw(st.sampled_from(["tensor", "tensor", "list", "int", "junk"]))
    # Each choice is biased toward the valid side, so that about half of all inputs are valid.
    if kind == "tensor":
        dtype = draw(st.one_of(st.sampled_from(INT_DTYPES), st.sampled_from(OTHER_DTYPES)))
        shape = draw(st.one_of(st.tuples(st.integers(1, 5)), st.lists(st.integers(0, 4), max_size=3).map(tuple)))
        n = int(torch.Size(shape).numel())
        values = draw(st.lists(st.one_of(st.integers(0, NUM_CLASSES - 1), st.integers(-3, NUM_CLASSES + 3)),
                               min_size=n, max_size=n))
        labels = torch.tensor(values, dtype=torch.int64).reshape(shape).to(dtype)  # uint8 wraps negatives around
        as_int = labels.to(torch.int64) if dtype in INT_DTYPES else None
        valid = (as_int is not None and labels.dim() == 1 and n > 0
                 and bool((as_int >= 0).all()) and bool((as_int < NUM_CLASSES).all()))
        return labels, max(n, 1), valid
    if kind == "list":
        items = draw(st.lists(st.one_of(st.integers(0, NUM_CLASSES - 1), st.integers(-3, NUM_CLASSES + 3),
                                        st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.booleans()),
                              max_size=5))
        valid = bool(items) and all(type(v) is int and 0 <= v < NUM_CLASSES for v in items)
        return items, max(len(items), 1), valid
    if kind == "int":
        value = draw(st.one_of(st.integers(-3, NUM_CLASSES + 3), st.booleans()))
        return value, 1, type(value) is int and 0 <= value < NUM_CLASSES
    return draw(st.sampled_from([None, "3", 2.0, float("nan"), (1.5, 2), {"a": 1}])), 1, False


@st.composite
def latent_inputs(draw: st.DrawFn, batch_size: int) -> tuple[torch.Tensor | None, bool]:
    """``(z, valid)``: ``None`` (drawn by ``sample``), the right shape, or a near miss; float or integer dtypes."""
    if draw(st.booleans()):
        return None, True
    shape = draw(st.one_of(st.just((batch_size, LATENT_DIM)),
                           st.sampled_from([(batch_size + 1, LATENT_DIM), (batch_size, LATENT_DIM + 1), (batch_size,),
                                            (batch_size, LATENT_DIM, 1), (0, LATENT_DIM)])))
    dtype = draw(st.sampled_from(FLOAT_DTYPES + (torch.int64,)))
    z = torch.randn(shape).to(dtype)
    return z, dtype in FLOAT_DTYPES and shape == (batch_size, LATENT_DIM)


def _check(call: Any, batch_size: int, valid: bool) -> None:
    if valid:
        images = call()
        assert images.shape == (batch_size, 1, 28, 28)
        assert images.dtype == torch.float32
        assert images.min() >= -1 and images.max() <= 1
    else:
        with pytest.raises(ValueError):  # any other exception type escapes and fails the test
            call()


@st.composite
def cases(draw: st.DrawFn) -> tuple[object, torch.Tensor | None, int, bool]:
    """``(labels, z, batch_size, valid)``."""
    labels, batch_size, labels_valid = draw(label_inputs())
    z, z_valid = draw(latent_inputs(batch_size))
    return labels, z, batch_size, labels_valid and z_valid


# Inputs that once escaped as another exception type or a dtype error, kept as fixed examples.
REGRESSIONS = [
    ([3, 4], torch.randn(2, LATENT_DIM, dtype=torch.float64), 2, True),  # was a float/double matmul RuntimeError
    ([2**70], None, 1, False),  # was an OverflowError from torch.tensor
    (None, None, 1, False),  # was a TypeError from list(None)
    (torch.tensor([1], dtype=torch.uint8), torch.randn(1, LATENT_DIM, dtype=torch.bfloat16), 1, True),
]


@settings(max_examples=100, deadline=None, database=None)
@given(case=cases(), model_name=st.sampled_from(sorted(MODELS)))
def test_sample_returns_images_or_raises_value_error(case: tuple[object, torch.Tensor | None, int, bool],
                                                     model_name: str) -> None:
    labels, z, batch_size, valid = case
    model = MODELS[model_name]
    _check(lambda: model.sample(labels, z=z), batch_size, valid)  # type: ignore[arg-type]


@settings(max_examples=80, deadline=None, database=None)
@given(case=cases())
def test_forward_returns_images_or_raises_value_error(case: tuple[object, torch.Tensor | None, int, bool]) -> None:
    labels, z, batch_size, valid = case
    # forward has no latents of its own: z=None is a mistake there.
    _check(lambda: MODELS["raw"].eval()(z, labels), batch_size, valid and z is not None)  # type: ignore[arg-type]


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("case", REGRESSIONS, ids=["float64_z", "huge_int", "none", "uint8_bf16"])
def test_regressions(case: tuple[object, torch.Tensor | None, int, bool], model_name: str) -> None:
    labels, z, batch_size, valid = case
    _check(lambda: MODELS[model_name].sample(labels, z=z), batch_size, valid)  # type: ignore[arg-type]
