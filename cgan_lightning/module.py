"""The conditional GAN as a LightningModule trained with manual optimization."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, cast

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from typing_extensions import override

from cgan_lightning.feature_tilt import (
    CALIBRATION_SAMPLES,
    CALIBRATION_SEED,
    CANDIDATE_SEED,
    TILT_CHECKPOINT_KEY,
    FeatureTilt,
    check_tilt_options,
    selection_noise,
)
from cgan_lightning.losses import (
    DiscriminatorPenalty,
    GeneratorLoss,
    LeCamEMA,
    RelativisticGeneratorLoss,
    get_loss,
    mode_seeking_loss,
    r1_penalty,
)
from cgan_lightning.lr_decay import check_lr_decay, linear_decay_schedulers, planned_training_batches
from cgan_lightning.metrics.sample_checks import check_samples
from cgan_lightning.metrics.sampling import training_images
from cgan_lightning.nn.atypical_weighting import AtypicalRealWeighting
from cgan_lightning.nn.augment import build_d_augment
from cgan_lightning.nn.base import ConditionalDiscriminator, ConditionalGenerator
from cgan_lightning.nn.build import build_network
from cgan_lightning.nn.class_moments import build_class_moments, feature_critic_of
from cgan_lightning.nn.ema import GeneratorEMA
from cgan_lightning.nn.mlp import MLPDiscriminator, MLPGenerator
from cgan_lightning.sampling import ClassHead, check_sampling_options, redraw_doubted, redraw_permutations
from cgan_lightning.strategies.gan_ddp import GANDDPStrategy, allow_unused_parameters
from cgan_lightning.utilities.argument_checks import (
    ImageShape,
    as_label_tensor,
    build_optimizer,
    check_bool,
    check_image_shape,
    check_int,
    check_latents,
    check_number,
    check_sample_inputs,
)
from cgan_lightning.utilities.checkpoint_files import (
    CheckpointError,
    check_checkpoint_matches,
    is_local_path,
    overridden_settings,
    verify_checkpoint_file,
)
from cgan_lightning.utilities.class_configs import from_class_config, to_class_config
from cgan_lightning.utilities.cuda_check import skip_nvml_check_without_nvml
from cgan_lightning.utilities.eval_mode import eval_mode
from cgan_lightning.utilities.lightning_internals import attached_trainer, log_every_n_steps
from cgan_lightning.utilities.row_gradient_scale import RowGradientScale, backward_g_and_d
from cgan_lightning.utilities.training_rng import TrainingRNG, rank_seed

#: Builds a generator from ``(latent_dim, num_classes, image_shape)``; in a config: ``class_path`` (a subclass of
#: :class:`~cgan_lightning.nn.base.ConditionalGenerator`) + ``init_args``.
GeneratorFactory = Callable[[int, int, ImageShape], ConditionalGenerator]
#: Builds a discriminator from ``(num_classes, image_shape)``; in a config: ``class_path`` (a subclass of
#: :class:`~cgan_lightning.nn.base.ConditionalDiscriminator`) + ``init_args``.
DiscriminatorFactory = Callable[[int, ImageShape], ConditionalDiscriminator]
#: Batch-norm layers (public classes): their statistics would mix real and fake pairs in one forward.
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.LazyBatchNorm1d,
                nn.LazyBatchNorm2d, nn.LazyBatchNorm3d)


#: Orders of the D and G updates within a batch (``ConditionalGAN(step_order=...)``).
STEP_ORDERS = ("d_first", "g_first")
#: ``load_from_checkpoint``'s own arguments; its other keyword arguments override the checkpoint's settings.
_LOADING_ARGUMENTS = frozenset({"map_location", "hparams_file", "strict", "weights_only"})


#: ``torch.compile``'s modes, which ``compile`` also takes.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def check_compile(compile: object) -> str | None:
    """The ``torch.compile`` mode that ``compile`` asks for (``None``: off); raises ``ValueError`` for anything else."""
    if isinstance(compile, str) and compile in COMPILE_MODES:
        return compile
    if isinstance(compile, bool):
        return "default" if compile else None
    raise ValueError(f"compile must be true, false or a torch.compile mode ({', '.join(COMPILE_MODES)}), "
                     f"got {compile!r}")


def check_compile_penalties(compile_mode: str | None, loss: str, loss_penalty: object, r1_gamma: float) -> None:
    """Raise ``ValueError`` for a compiled model whose D penalty differentiates D's input gradient.

    A loss's own penalty (WGAN-GP's gradient penalty) and R1 backpropagate through ``d D(x) / dx`` (a double
    backward), which ``torch.compile``'s AOTAutograd does not support: it would fail at the first D step.
    """
    if compile_mode is None:
        return
    penalties = ((f"loss={loss!r} (its gradient penalty)", loss_penalty is not None), ("r1_gamma > 0", r1_gamma > 0))
    for name, on in penalties:
        if on:
            raise ValueError(f"{name} backpropagates through D's input gradient (a double backward), which "
                             f"torch.compile does not support: set compile=false, or choose another loss / r1_gamma=0")


def check_joint_d_forward(discriminator: nn.Module) -> None:
    """Raise ``ValueError`` when scoring real and fake pairs in one D forward would change D's loss.

    Batch norm would normalize the mixed batch with shared statistics; an auxiliary head
    (``logits_and_aux_loss``) would take its loss over the generated pairs as well as the real ones.
    """
    if any(isinstance(m, _BATCH_NORMS) for m in discriminator.modules()):
        raise ValueError(f"joint_d_forward=True needs a discriminator without batch norm, but "
                         f"{type(discriminator).__name__} has one: set joint_d_forward=False")
    if hasattr(discriminator, "logits_and_aux_loss"):
        raise ValueError(f"joint_d_forward=True does not support {type(discriminator).__name__}'s auxiliary head "
                         "(its loss is over real pairs only): set joint_d_forward=False")


def check_shared_d_backward(step_order: str, joint_d_forward: bool, mode_seeking_weight: float,
                            class_moment_weight: float = 0.0) -> None:
    """Raise ``ValueError`` unless one backward through D can serve both updates (``shared_d_backward=True``).

    It needs the reference order (both losses read D's logits of the same generated batch), a D that scores each
    pair on its own (``joint_d_forward=True`` checks that), and a G loss that reads the generated images only
    through those logits (the mode-seeking term reads them directly, the class moment matching D's features).
    """
    if step_order != "g_first" or not joint_d_forward:
        raise ValueError(f"shared_d_backward=True needs step_order='g_first' and joint_d_forward=True, got "
                         f"step_order={step_order!r}, joint_d_forward={joint_d_forward}")
    if mode_seeking_weight > 0:
        raise ValueError("shared_d_backward=True does not support the mode-seeking term (it reads the generated "
                         "images directly, not through D): set mode_seeking_weight=0 or shared_d_backward=False")
    if class_moment_weight > 0:
        raise ValueError("shared_d_backward=True does not support the class moment matching (it reads D's features, "
                         "not its logits): set class_moment_weight=0 or shared_d_backward=False")


#: The option whose error messages name the tilt's needs.
TILT_OPTION = "sample_tilt_temperature"
#: Training metrics shown in the progress bar.
PROGRESS_BAR_METRICS = ("train/g_loss", "train/d_loss")


def init_defaults(cls: type) -> dict[str, Any]:
    """The default of each ``__init__`` argument of ``cls`` (the settings a checkpoint older than an option lacks)."""
    return {name: parameter.default for name, parameter in inspect.signature(cls).parameters.items()
            if parameter.default is not inspect.Parameter.empty}


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stopped before the optimizer step that would apply it."""


def reference_adam(params: Any) -> torch.optim.Optimizer:
    """The reference optimizer: ``Adam(lr=2e-4, betas=(0.5, 0.999))``."""
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))


def check_real_batch(batch: object, num_classes: int, image_shape: Sequence[int]) -> None:
    """Refuse a training batch that is not ``(images, labels)`` as the networks need them, before any update.

    Raises:
        ValueError: not a pair; images not float ``[B, C, H, W]`` of ``image_shape`` in ``[-1, 1]``; labels not
            integers in ``[0, num_classes)``, one per image. The message says what the loaders must yield.
    """
    need = (f"a data module's training loader must yield (images: float [B, {', '.join(map(str, image_shape))}] "
            f"in [-1, 1], labels: int64 [B] in [0, {num_classes}))")
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        raise ValueError(f"the first training batch is a {type(batch).__name__}, not (images, labels): {need}")
    images, labels = batch
    try:
        check_samples(images, None, tuple(image_shape), what="the first training batch's images")
        checked = as_label_tensor(labels, num_classes)
    except ValueError as err:
        raise ValueError(f"{err}; {need}") from None
    if len(checked) != len(images):
        raise ValueError(f"the first training batch holds {len(images)} images but {len(checked)} labels; {need}")


class ConditionalGAN(LightningModule):
    """A class-conditional GAN: G(z, y) draws an image of class y; D(x, y) judges the (image, label) pair.

    Each training batch runs ``d_steps_per_g_step`` discriminator updates, then ``g_steps_per_batch`` generator
    updates (1 by default), with manual optimization. Because Lightning counts every ``optimizer.step()`` in
    ``global_step``, one batch advances ``global_step`` by ``d_steps_per_g_step + g_steps_per_batch`` (2 by
    default): ``Trainer(max_steps=N)`` stops after ``N / (d_steps_per_g_step + g_steps_per_batch)`` batches. The
    number of batches is logged as ``train/batches_seen``.

    Training metrics are logged every ``Trainer(log_every_n_steps=N)`` batches as their image-weighted mean over
    those ``N`` batches (epoch means are exact image means); each ``self.log`` costs Lightning about half a
    millisecond of CPU, so logging less often is faster and changes no number of the training.

    The training latents and fake labels come from a ``torch.Generator`` the module owns, seeded at the start of
    ``fit`` from ``torch.initial_seed()`` (so ``seed_everything(s)`` fixes it) plus the DDP rank (each rank draws
    its own fakes), and kept in every checkpoint: ``fit(ckpt_path=...)`` continues exactly, without touching
    the global RNG.

    Networks and optimizers given as callables (a class, ``functools.partial(cls, **kwargs)``) are recorded in
    the hyperparameters as ``{"class_path": ..., "init_args": {...}}`` dicts, as the CLI writes them, so
    ``load_from_checkpoint(path)`` rebuilds them with ``torch.load``'s default ``weights_only=True``.

    Evaluation protocol (what the callbacks rely on): ``num_classes``, ``latent_dim``, ``image_shape`` and
    ``sample(labels, z=None, generator=None, ema=None)`` (EMA weights whenever ``ema_decay`` is set).

    Args:
        num_classes: number of labels (linked from the data module by the CLI).
        image_shape: ``(channels, height, width)`` (linked from the data module by the CLI).
        latent_dim: size of the noise vector z.
        generator: G's builder; default: the reference MLP. It is called with ``(latent_dim, num_classes,
            image_shape)``; in a config, a subclass of :class:`~cgan_lightning.nn.base.ConditionalGenerator`.
        discriminator: D's builder; default: the reference MLP. It is called with ``(num_classes, image_shape)``;
            in a config, a subclass of :class:`~cgan_lightning.nn.base.ConditionalDiscriminator`.
        optimizer_g: builds G's optimizer from its parameters; default ``Adam(lr=2e-4, betas=(0.5, 0.999))``.
        optimizer_d: D's optimizer; default as ``optimizer_g``. It is built from D's parameters.
        loss: adversarial loss name from :data:`cgan_lightning.losses.LOSSES` (``bce``: the reference objective).
        d_steps_per_g_step: D updates per batch. They come before G's (``d_first``) or after it (``g_first``).
        g_steps_per_batch: generator updates per batch, after D's (``d_first`` only). G's update reads no real
            image, so more of them give G more learning from the same data; the first uses the batch the D step
            scored, each further one a fresh generated batch of the same size against the same D.
        check_finite: stop with :class:`NonFiniteLossError` when a loss is NaN/inf (one host read per step).
        r1_gamma: weight of the R1 penalty on real data in D's loss (0: off). It works with any ``loss``.
        ema_decay: decay of the EMA of G's weights that :meth:`sample` uses (``None``: none). E.g. ``0.999``;
            it is updated after every G step.
        joint_d_forward: score real and generated pairs in one D forward. One forward of twice the batch, the same
            maths up to rounding: fewer, larger matrix products; equal to rounding, not bit for bit. Needs a D without
            batch norm (its statistics would mix real and fake) and without an auxiliary head.
        step_order: ``"d_first"`` (default: D steps, then G) or ``"g_first"`` (the reference loop's order).
            With ``"d_first"`` each batch makes its D steps, then the G step against the updated D; with
            ``"g_first"``, a G step, then a D step on the same generated batch with D as it was before G's update,
            one D forward of that batch serving both updates, with the reference's maths (needs
            ``d_steps_per_g_step=1``).
        shared_d_backward: with ``g_first`` and ``joint_d_forward``: one backward through D for both. It serves
            both updates; see :mod:`cgan_lightning.utilities.row_gradient_scale`.
        compile: ``torch.compile`` G and D in place; a string is its ``mode``. D stays eager with ``g_first``.
            State-dict keys stay the same; the first steps pay the compilation; ``reduce-overhead`` adds CUDA graphs.
        augment: DiffAugment of every image D sees, e.g. ``[translation, cutout]``. A small-data option (``None``:
            off), on real and generated images alike, differentiably; digit-safe transforms only, see
            :mod:`cgan_lightning.nn.augment`.
        augment_p: probability of each transform per image (1.0: always, as DiffAugment).
        ada_target: adapt the augmentation probability ADA-style, towards this target. The signal is D's
            overfitting ``E[sign(D(real))]`` (target 0.6 in ADA); ``p`` starts at 0 and is logged as
            ``train/augment_p``. Needs ``augment``.
        ada_kimg: thousands of real images over which the adaptive ``p`` can move from 0 to 1.
        lecam_weight: LeCam weight (0: off). The LeCam regularizer on D, Tseng et al. 2021; see
            :func:`cgan_lightning.losses.lecam_penalty`.
        lecam_decay: LeCam's EMA decay. The averages are of D's outputs.
        mode_seeking_weight: MSGAN weight (0: off). The mode-seeking regularizer on G, Mao et al. 2019; see
            :func:`cgan_lightning.losses.mode_seeking_loss`. When on, the second half of each generated batch is
            drawn for the labels of the first half (the pairs it compares).
        atypical_weighting: weigh D's real terms towards atypical training images, this strongly (0: off).
            An image's weight is ``clip(1 + a * t, 0.25, 3)`` (batch mean 1), ``a`` this strength, ``t`` its
            standardized distance from its class's centroid; see :mod:`cgan_lightning.nn.atypical_weighting`.
        atypical_features: the classifier that measures that distance (``"mnist"`` or a path). The ``"mnist"``
            one is the shipped critic classifier; a path names one written by ``cgan-lightning train-classifier``.
        class_moment_weight: G's per-class feature moments pulled to the real ones (0: off).
            Needs D's ``feature_critic``; see :mod:`cgan_lightning.nn.class_moments`.
        class_covariance_weight: G's per-class feature covariances pulled to the real ones (0: off).
            A term of the moment matching, so it needs ``class_moment_weight`` > 0: the relative squared Frobenius
            distance of G's running covariance from the training split's, in each class's leading directions.
        class_covariance_rank: directions compared per class. The covariances are compared in each class's
            leading principal directions of the training features.
        sample_latent_scale: :meth:`sample` draws with latents this many times wider than N(0, I) (1: as trained).
            Training never uses it; ``z`` passed to :meth:`sample` is scaled too.
        sample_min_class_prob: :meth:`sample` redraws digits D's class head doubts under this (0: off). A digit is
            doubted when the head gives its label a probability under this. Needs a discriminator with a class head
            (:class:`~cgan_lightning.nn.dcgan.ACGANDiscriminator`); see :mod:`cgan_lightning.sampling`. An image is
            redrawn from fixed permutations of its latent, at most 3 times, so it still depends only on ``(z, label)``.
        sample_tilt_temperature: tilt :meth:`sample` to the training features (0: off). Each image is picked among
            ``sample_tilt_candidates`` by the density ratio of the training split's critic features to G's, to the
            power ``1 / T``; needs D's ``feature_critic``. The training statistics are fitted at the start of ``fit``
            and kept in checkpoints, G's refitted from its own samples whenever the global step moved. See
            :mod:`cgan_lightning.feature_tilt`.
        sample_tilt_candidates: tilt candidates per sample.
        class_names: one name per label (linked from the data module by the CLI). They are shown in per-class tables,
            grid captions and W&B tables, and accepted by ``cgan-lightning sample --labels``. ``None``: the label ids.
        lr_decay: share of training at the end over which both rates fall to 0 (0: off). They fall linearly,
            stepped per batch (0.5: constant over the first half, then down to 0); the run needs ``max_epochs``
            or ``max_steps``. See :mod:`cgan_lightning.lr_decay`.

    Discriminator hooks: the loss's ``penalty`` (WGAN-GP) and R1 are added to D's loss; a discriminator that
    defines ``logits_and_aux_loss(images, labels) -> (logits, aux_loss | None)`` (the AC-GAN head of
    :class:`~cgan_lightning.nn.dcgan.DCGANDiscriminator`) has its auxiliary loss on real pairs added to D's
    loss and on generated pairs added to G's loss.
    """

    def __init__(
        self,
        num_classes: int = 10,
        image_shape: ImageShape = (1, 28, 28),
        latent_dim: int = 100,
        generator: GeneratorFactory | None = None,
        discriminator: DiscriminatorFactory | None = None,
        optimizer_g: OptimizerCallable | None = None,
        optimizer_d: OptimizerCallable | None = None,
        loss: str = "bce",
        d_steps_per_g_step: int = 1,
        g_steps_per_batch: int = 1,
        check_finite: bool = True,
        r1_gamma: float = 0.0,
        ema_decay: float | None = None,
        joint_d_forward: bool = False,
        step_order: str = "d_first",
        shared_d_backward: bool = False,
        compile: bool | str = False,
        augment: list[str] | None = None,
        augment_p: float = 1.0,
        ada_target: float | None = None,
        ada_kimg: float = 100.0,
        lecam_weight: float = 0.0,
        lecam_decay: float = 0.99,
        mode_seeking_weight: float = 0.0,
        atypical_weighting: float = 0.0,
        atypical_features: str = "mnist",
        class_moment_weight: float = 0.0,
        class_covariance_weight: float = 0.0,
        class_covariance_rank: int = 8,
        sample_latent_scale: float = 1.0,
        sample_min_class_prob: float = 0.0,
        sample_tilt_temperature: float = 0.0,
        sample_tilt_candidates: int = 4,
        class_names: list[str] | None = None,
        lr_decay: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("latent_dim", latent_dim),
                            ("d_steps_per_g_step", d_steps_per_g_step), ("g_steps_per_batch", g_steps_per_batch)):
            check_int(value, name, minimum=None)  # the type here; the ranges below
        for name, number in (("r1_gamma", r1_gamma), ("ema_decay", 0.0 if ema_decay is None else ema_decay)):
            check_number(number, name)
        for name, flag in (("check_finite", check_finite), ("joint_d_forward", joint_d_forward),
                           ("shared_d_backward", shared_d_backward)):
            check_bool(flag, name)
        compile_mode = check_compile(compile)
        image_shape = check_image_shape(image_shape)
        if num_classes <= 0:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes}")
        if latent_dim <= 0:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim}")
        if d_steps_per_g_step < 1:
            raise ValueError(f"d_steps_per_g_step must be >= 1, got {d_steps_per_g_step}")
        if g_steps_per_batch < 1:
            raise ValueError(f"g_steps_per_batch must be >= 1, got {g_steps_per_batch}")
        if step_order not in STEP_ORDERS:
            raise ValueError(f"step_order must be one of {list(STEP_ORDERS)}, got {step_order!r}")
        if step_order == "g_first" and d_steps_per_g_step != 1:
            raise ValueError(f"step_order='g_first' makes one D step per G step on the same generated batch, but "
                             f"d_steps_per_g_step={d_steps_per_g_step}: set d_steps_per_g_step=1 or "
                             "step_order='d_first'")
        if step_order == "g_first" and g_steps_per_batch != 1:
            raise ValueError(f"step_order='g_first' makes one G step per batch, but g_steps_per_batch="
                             f"{g_steps_per_batch}: set g_steps_per_batch=1 or step_order='d_first'")
        if len(image_shape) != 3 or min(image_shape) <= 0:
            raise ValueError(f"image_shape must be (channels, height, width) of positive ints, got {image_shape}")
        if class_names is not None:
            class_names = [str(name) for name in class_names]
            if len(class_names) != num_classes or len(set(class_names)) != num_classes:
                raise ValueError(f"class_names must be {num_classes} distinct names (one per label), got {class_names}")
        # Callables become plain class-config dicts before save_hyperparameters records them (no pickled code in
        # checkpoints); dicts (from load_from_checkpoint) become factories again.
        generator_factory = from_class_config(generator, "generator")
        discriminator_factory = from_class_config(discriminator, "discriminator")
        optimizer_g_factory = from_class_config(optimizer_g, "optimizer_g")
        optimizer_d_factory = from_class_config(optimizer_d, "optimizer_d")
        generator, discriminator = to_class_config(generator), to_class_config(discriminator)
        optimizer_g, optimizer_d = to_class_config(optimizer_g), to_class_config(optimizer_d)
        self.save_hyperparameters()
        # The CLI links these from the data module after parsing; record the values actually used so that
        # load_from_checkpoint rebuilds the same networks.
        self.hparams.update(num_classes=num_classes, image_shape=list(image_shape), latent_dim=latent_dim,
                            class_names=class_names)
        self.automatic_optimization = False
        self.num_classes = num_classes
        self.image_shape: ImageShape = image_shape
        self.latent_dim = latent_dim
        self.class_names: list[str] = class_names or [str(k) for k in range(num_classes)]
        self.d_steps_per_g_step = d_steps_per_g_step
        self.g_steps_per_batch = g_steps_per_batch
        self.check_finite = check_finite
        self.lr_decay = check_lr_decay(lr_decay)
        self.adversarial_loss = get_loss(loss)
        if r1_gamma < 0:
            raise ValueError(f"r1_gamma must be >= 0 (0 turns the R1 penalty off), got {r1_gamma}")
        r1 = partial(r1_penalty, gamma=r1_gamma) if r1_gamma > 0 else None
        self.d_penalties: list[DiscriminatorPenalty] = [p for p in (self.adversarial_loss.penalty, r1) if p]
        check_compile_penalties(compile_mode, loss, self.adversarial_loss.penalty, r1_gamma)
        self.generator = build_network(generator_factory or MLPGenerator, (latent_dim, num_classes, image_shape),
                                       "generator")
        self.discriminator = build_network(discriminator_factory or MLPDiscriminator, (num_classes, image_shape),
                                           "discriminator")
        # A submodule, so the average is saved in checkpoints and follows the module's device.
        self.generator_ema = GeneratorEMA(self.generator, ema_decay) if ema_decay is not None else None
        # Small-data options, off by default (then no submodule: the state dict is unchanged).
        self.d_augment = build_d_augment(augment, augment_p, ada_target, ada_kimg)
        if lecam_weight < 0:
            raise ValueError(f"lecam_weight must be >= 0 (0 turns LeCam off), got {lecam_weight}")
        self.lecam_weight = lecam_weight
        self.lecam = LeCamEMA(lecam_decay) if lecam_weight > 0 else None
        self.mode_seeking_weight = check_number(mode_seeking_weight, "mode_seeking_weight", minimum=0.0)  # 0: off
        check_number(atypical_weighting, "atypical_weighting", minimum=0.0)  # 0: off
        self.atypical_weighting = (AtypicalRealWeighting(atypical_features, num_classes, image_shape,
                                                         atypical_weighting) if atypical_weighting > 0 else None)
        check_number(class_moment_weight, "class_moment_weight", minimum=0.0)  # 0: off
        if class_moment_weight > 0 and self.d_augment is not None:
            raise ValueError("class_moment_weight > 0 matches the critic's features of the generated digits to the "
                             "training digits' as they are, but augment would show the critic augmented ones: set "
                             "augment=None or class_moment_weight=0")
        check_number(class_covariance_weight, "class_covariance_weight", minimum=0.0)  # 0: off
        check_int(class_covariance_rank, "class_covariance_rank")
        self.class_moments = build_class_moments(self.discriminator, num_classes, class_moment_weight,
                                                 class_covariance_weight, class_covariance_rank)
        self.sample_latent_scale, self.sample_min_class_prob = check_sampling_options(
            sample_latent_scale, sample_min_class_prob, self.discriminator)
        self.sample_tilt_temperature, self.sample_tilt_candidates = check_tilt_options(sample_tilt_temperature,
                                                                                       sample_tilt_candidates)
        if self.sample_tilt_temperature > 0:
            feature_critic_of(self.discriminator, TILT_OPTION)  # the tilt reads its features
        #: The tilt's per-class Gaussians (:mod:`cgan_lightning.feature_tilt`), and the (global step, EMA) of G's fit.
        self.sample_tilt = FeatureTilt(num_classes) if self.sample_tilt_temperature > 0 else None
        self._tilt_fitted_for: tuple[int, bool] | None = None
        #: Candidates 2 to K of the tilt: fixed permutations of the latent, as the class-head redraws use.
        self._tilt_permutations = redraw_permutations(latent_dim, self.sample_tilt_candidates - 1, CANDIDATE_SEED)
        self._optimizer_g = optimizer_g_factory or reference_adam
        self._optimizer_d = optimizer_d_factory or reference_adam
        #: Draws the training latents and fake labels; seeded in on_fit_start, saved in every checkpoint.
        self.training_rng = TrainingRNG()
        self._log_window: Tensor | None = None  # image-weighted sums of the metrics since the last log
        self._log_window_images = 0
        self._eval_rng: torch.Generator | None = None
        #: The redraws' fixed latent permutations (the same on every run: not a buffer, not in checkpoints).
        self._redraw_permutations = redraw_permutations(latent_dim)
        #: With ``sample_min_class_prob``: samples drawn and first draws redrawn since the model was built (a user
        #: tuning the threshold reads the share; reset it by assigning zeros). With the tilt, each of an image's
        #: candidates is a draw; the tilt's own calibration draws are not counted.
        self.sample_redraws = {"drawn": 0, "redrawn": 0}
        self._first_batch_checked = False  # training_step checks the first real batch of each fit
        if joint_d_forward:
            check_joint_d_forward(self.discriminator)
        self.joint_d_forward = joint_d_forward
        self.step_order = step_order
        if shared_d_backward:
            check_shared_d_backward(step_order, joint_d_forward, self.mode_seeking_weight, class_moment_weight)
        #: Turns D's gradient into the generated images into G's (shared_d_backward); None: two backwards.
        self._row_scale = RowGradientScale() if shared_d_backward else None
        if compile_mode is not None:
            # In place (nn.Module.compile), after the EMA copy: parameter names and checkpoints stay the same.
            self.generator.compile(mode=compile_mode)
            if step_order == "d_first":
                # g_first backpropagates one D forward twice where one shared backward can't serve; a compiled
                # graph refuses that, or gives wrong gradients without buffer donation (torch 2.14; see
                # benchmarks/compiled_double_backward.py): D stays eager there.
                self.discriminator.compile(mode=compile_mode)

    # ----------------------------------------------------------------------------------------- public API
    @override
    def forward(self, z: Tensor, labels: Tensor | Sequence[int]) -> Tensor:
        """Generate images in ``[-1, 1]`` of shape ``[B, C, H, W]`` for latents ``[B, latent_dim]`` and labels ``[B]``.

        Raises:
            ValueError: labels out of ``[0, num_classes)`` or not integers; z of the wrong shape.
        """
        labels = as_label_tensor(labels, self.num_classes, device=self.device)
        check_latents(z, labels.numel(), self.latent_dim)
        return self.generator(z.to(self.device, cast(torch.dtype, self.dtype)), labels)  # a module's dtype is a dtype

    @torch.no_grad()
    def sample(
        self,
        labels: Tensor | Sequence[int] | int,
        z: Tensor | None = None,
        generator: torch.Generator | None = None,
        ema: bool | None = None,
        redraw: bool = True,
    ) -> Tensor:
        """Draw one image per label, in eval mode and without gradients; the previous train/eval mode is restored.

        Latents are scaled by ``sample_latent_scale``; with ``sample_min_class_prob`` set, images D's class head
        doubts are redrawn (:mod:`cgan_lightning.sampling`); with ``sample_tilt_temperature`` set, each image is
        picked among ``sample_tilt_candidates`` (:mod:`cgan_lightning.feature_tilt`).

        Args:
            labels: class ids ``[B]`` (tensor, list or single int).
            z: latents ``[B, latent_dim]``; drawn from N(0, I) when omitted.
            generator: a ``torch.Generator`` (on the CPU or the module's device) that makes the draw reproducible.
            ema: draw with the EMA of G's weights (``True``), the raw weights (``False``), or the EMA whenever
                the model keeps one (``None``).
            redraw: ``False``: keep every image drawn from its own ``z`` even with ``sample_min_class_prob`` or
                ``sample_tilt_temperature`` set (the interference test and the traversal render fixed latents).

        Returns:
            Images ``[B, C, H, W]`` in ``[-1, 1]`` on the module's device.

        Raises:
            ValueError: ``ema=True`` on a model trained without ``ema_decay``; bad labels, z (also NaN/inf) or
                generator; the generator's images hold NaN/inf (a ``BadSamplesError`` naming the classes).
        """
        if ema and self.generator_ema is None:
            raise ValueError("ema=True but this model keeps no EMA of G's weights (it was built with ema_decay=None)")
        check_sample_inputs(z, generator)
        labels = as_label_tensor(labels, self.num_classes, device=self.device)
        if z is None:
            z = self.draw_latents(labels.numel(), generator)
        check_latents(z, labels.numel(), self.latent_dim)
        z = z.to(self.device, cast(torch.dtype, self.dtype))
        use_ema = self.generator_ema is not None and ema is not False
        if redraw and self.sample_tilt is not None:
            images = self._tilted_draw(z, labels, use_ema)
        else:
            images = self._draw(z * self.sample_latent_scale, labels, use_ema, redraw)
        return check_samples(images, labels, tolerance=math.inf)  # NaN weights: an error, not NaN images

    def _draw(self, z: Tensor, labels: Tensor, use_ema: bool, redraw: bool) -> Tensor:
        """G's images of scaled latents ``z``, redrawing those D's class head doubts when ``redraw`` asks."""
        # The EMA copy is always in eval mode; G's raw weights and D are put in it for the draw.
        network = cast(nn.Module, self.generator_ema if use_ema else self.generator)
        with eval_mode(network):
            if not redraw or self.sample_min_class_prob == 0:
                return cast(Tensor, network(z, labels))
            head = cast(ClassHead, self.discriminator)  # checked in __init__
            with eval_mode(self.discriminator):  # no spectral-norm power iteration: D's state is untouched
                images, doubted = redraw_doubted(z, labels, network, head.label_probability,
                                                 self.sample_min_class_prob, self._redraw_permutations)
            self.sample_redraws["drawn"] += labels.numel()
            self.sample_redraws["redrawn"] += doubted
            return images

    def _tilted_draw(self, z: Tensor, labels: Tensor, use_ema: bool) -> Tensor:
        """Each image picked among its candidates by ``exp(log_ratio / T)`` (:mod:`cgan_lightning.feature_tilt`)."""
        tilt = cast(FeatureTilt, self.sample_tilt)
        self._fit_tilt(tilt, use_ema)
        critic = feature_critic_of(self.discriminator, TILT_OPTION)
        latents = [z, *(z[:, p.to(z.device)] for p in self._tilt_permutations)]
        images = torch.stack([self._draw(c * self.sample_latent_scale, labels, use_ema, True) for c in latents], 1)
        scores = torch.stack([tilt.log_ratio(critic.features_of(images[:, k]), labels)
                              for k in range(len(latents))], 1)  # [B, K]
        pick = (scores / self.sample_tilt_temperature + selection_noise(z.cpu(), len(latents))).argmax(1)
        return images[torch.arange(labels.numel(), device=images.device), pick.to(images.device)]

    def _fit_tilt(self, tilt: FeatureTilt, use_ema: bool) -> None:
        """Fit the training split's Gaussians if no checkpoint brought them, and G's if its weights moved since."""
        if tilt.real is None:
            trainer = attached_trainer(self)
            if trainer is None or getattr(trainer, "datamodule", None) is None:
                raise ValueError("sample_tilt_temperature > 0 needs the training split's feature statistics, which "
                                 "this model has not fitted (they are fitted by fit() and kept in its checkpoints): "
                                 "call model.fit_sample_tilt(train_images, train_labels) with the training images "
                                 "in [-1, 1], or set sample_tilt_temperature=0")
            self.fit_sample_tilt(*training_images(trainer))
        if self._tilt_fitted_for == (self.global_step, use_ema) and tilt.generated is not None:
            return
        labels = torch.arange(self.num_classes, device=self.device).repeat_interleave(CALIBRATION_SAMPLES)
        rng = torch.Generator().manual_seed(CALIBRATION_SEED)
        critic = feature_critic_of(self.discriminator, TILT_OPTION)
        counted = dict(self.sample_redraws)  # the calibration's draws are not the user's samples
        features = torch.cat([critic.features_of(self._draw(torch.randn(len(chunk), self.latent_dim, generator=rng)
                                                            .to(self.device) * self.sample_latent_scale,
                                                            chunk, use_ema, True))
                              for chunk in labels.split(1000)])
        self.sample_redraws.update(counted)
        tilt.fit_generated(features, labels)
        self._tilt_fitted_for = (self.global_step, use_ema)

    @torch.no_grad()
    def fit_sample_tilt(self, images: Tensor, labels: Tensor) -> None:
        """Fit the sampling tilt's training statistics on the training images (``[-1, 1]``) and labels.

        ``fit()`` does this at its start; call it for a model built or loaded without them.

        Raises:
            ValueError: the model has no tilt (``sample_tilt_temperature=0``), or a class has too few images.
        """
        if self.sample_tilt is None:
            raise ValueError("fit_sample_tilt: this model samples without the tilt (sample_tilt_temperature=0)")
        labels = torch.as_tensor(labels)
        critic = feature_critic_of(self.discriminator, TILT_OPTION)
        features = critic.features_of(torch.as_tensor(images).to(self.device))
        self.sample_tilt.fit_real(features, labels)
        self._tilt_fitted_for = None

    def draw_latents(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` latents from N(0, I) on the module's device (reproducibly when ``generator`` is given)."""
        if n <= 0:
            raise ValueError(f"the number of samples must be positive, got {n}")
        gen_device = generator.device if generator is not None else self.device
        return torch.randn(n, self.latent_dim, generator=generator, device=gen_device).to(self.device)

    @classmethod
    @override
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> ConditionalGAN:
        """``LightningModule.load_from_checkpoint``, with a clear error for a damaged or mismatched file.

        Takes the same arguments (``map_location``, ``strict``, ``weights_only``, hyperparameter overrides).

        Raises:
            CheckpointError: (a ``ValueError``) the file is missing, truncated or corrupted, or its tensors do
                not fit the model its hyperparameters (and any overrides) build; the message names the file.
        """
        path = checkpoint_path if is_local_path(checkpoint_path) else None
        if path is not None:
            verify_checkpoint_file(path)
        try:
            return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)
        except CheckpointError as err:
            # Lightning merges the keyword overrides into the checkpoint's settings before any hook sees them: name
            # the ones that changed a setting the weights were trained with, read from the file itself.
            overrides = {k: v for k, v in kwargs.items() if k not in _LOADING_ARGUMENTS}
            changed = overridden_settings(path, overrides, kwargs.get("weights_only")) if path and overrides else []
            if changed:
                raise CheckpointError(f"load_from_checkpoint's arguments change settings its weights were trained "
                                      f"with ({'; '.join(changed)}), and the weights do not fit the model they "
                                      "build: drop those arguments (the sampling options, sample_*, may be "
                                      "changed)", path) from err
            raise err.with_path(path) if path is not None else err from err.__cause__
        except KeyError as err:  # Lightning reads the checkpoint's entries before anything can check them
            raise CheckpointError(f"holds no {err}: it is not a Lightning checkpoint (a bare model.state_dict() "
                                  "file? load it with model.load_state_dict(torch.load(path)))", path) from err

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Runs before the weights are copied in (Trainer and load_from_checkpoint alike): a checkpoint made for
        # other data or networks gets one clear message instead of load_state_dict's size-mismatch listing.
        trainer = attached_trainer(self)
        check_checkpoint_matches(
            checkpoint, self.state_dict(), self.hparams,
            strict=trainer is not None and self.strict_loading,  # load_from_checkpoint(strict=...) is not visible here
            path=trainer.ckpt_path if trainer is not None and is_local_path(trainer.ckpt_path) else None,
            defaults=init_defaults(type(self)),
        )
        self.training_rng.load(checkpoint)
        if self.sample_tilt is not None and TILT_CHECKPOINT_KEY in checkpoint:
            self.sample_tilt.load_state_dict(checkpoint[TILT_CHECKPOINT_KEY])
            self._tilt_fitted_for = None

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.sample_tilt is not None and self.sample_tilt.real is not None:
            checkpoint[TILT_CHECKPOINT_KEY] = self.sample_tilt.state_dict()
        if not self.training_rng.started:  # not fitting (validate/test): no training noise to keep
            return
        state = self.training_rng.state()
        if self.trainer.world_size > 1:
            # Every rank dumps the checkpoint (rank 0 writes it): gather each rank's stream so all resume exactly.
            gathered = cast(Tensor, self.all_gather(state.to(self.device)))  # a tensor in, a tensor out
            states = [s.cpu() for s in gathered.unbind(0)]
        else:
            states = [state]
        self.training_rng.save(checkpoint, states)

    # ------------------------------------------------------------------------------------------ training
    @override
    def setup(self, stage: str) -> None:
        # Each optimizer step asks whether CUDA is available: without NVIDIA's driver, answer without a failed load.
        skip_nvml_check_without_nvml()
        # Stock DDP must tolerate the frozen half of each step (GANDDPStrategy, the CLI's "ddp", needs nothing).
        allow_unused_parameters(self.trainer.strategy)
        strategy = self.trainer.strategy
        if self.step_order == "g_first" and isinstance(strategy, DDPStrategy) and not isinstance(strategy,
                                                                                        GANDDPStrategy):
            raise ValueError("step_order='g_first' makes two backwards per batch from one forward, which stock "
                             "DDPStrategy can't reduce: use strategy='gan_ddp' (the cgan-lightning CLI maps 'ddp' to "
                             "it) or step_order='d_first'")

    @override
    def on_fit_start(self) -> None:
        self._first_batch_checked = False
        # After any checkpoint was loaded: continue its stream, else seed from torch.initial_seed() + rank.
        self.training_rng.start(self.device, self.global_rank, self.trainer.world_size)
        # Once per run: a resumed run keeps the checkpoint's statistics.
        atypical = self.atypical_weighting if self.atypical_weighting is not None and not bool(
            self.atypical_weighting.fitted) else None
        moments = self.class_moments if self.class_moments is not None and not bool(self.class_moments.fitted) else None
        tilt = self.sample_tilt is not None and self.sample_tilt.real is None
        if atypical is None and moments is None and not tilt:
            return
        images, labels = training_images(self.trainer)  # read (and normalized) once for all
        if atypical is not None:
            atypical.fit(images, labels)
        if moments is not None:
            moments.fit(feature_critic_of(self.discriminator).features_of(images.to(self.device)), labels)
        if tilt:
            self.fit_sample_tilt(images, labels)

    @override
    def configure_optimizers(self) -> OptimizerLRScheduler:
        # Order matters: training_step unpacks (G, D).
        optimizers = [build_optimizer(self._optimizer_g, self.generator.parameters(), "model.optimizer_g"),
                      build_optimizer(self._optimizer_d, self.discriminator.parameters(), "model.optimizer_d")]
        if self.lr_decay == 0:
            return optimizers
        # Optimizer steps per batch (g_first makes one of each: __init__ holds both counts at 1 there).
        total = planned_training_batches(self.trainer, self.d_steps_per_g_step + self.g_steps_per_batch)
        return optimizers, linear_decay_schedulers(optimizers, total, self.lr_decay)

    def _fake_batch(self, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """``n`` generated images, their labels and their latents (drawn from the training stream)."""
        rng = self.training_rng.generator
        z = torch.randn(n, self.latent_dim, device=self.device, generator=rng)
        if self.mode_seeking_weight > 0:  # mode-seeking pairs: labels[i + ceil(n / 2)] = labels[i]
            first = torch.randint(0, self.num_classes, (n - n // 2,), device=self.device, generator=rng)
            labels = torch.cat((first, first[: n // 2]))
        else:
            labels = torch.randint(0, self.num_classes, (n,), device=self.device, generator=rng)
        return self.generator(z, labels), labels, z

    def _g_regularized(self, g_loss: Tensor, fake: Tensor, z: Tensor) -> Tensor:
        """G's loss plus the mode-seeking term when it is on (a one-image batch, a data set's last, has no pair)."""
        if self.mode_seeking_weight > 0 and fake.size(0) >= 2:
            return g_loss + self.mode_seeking_weight * mode_seeking_loss(fake, z)
        return g_loss

    def _g_moments_added(self, g_loss: Tensor, labels: Tensor) -> Tensor:
        """G's loss plus the class moment matching (when on) on the critic's features of G's last D forward.

        ``labels`` are the generated images' labels; they are the last rows of that forward (a joint forward puts the
        real pairs first).
        """
        if self.class_moments is None:
            return g_loss
        critic = feature_critic_of(self.discriminator)
        features, critic.last_features = critic.last_features, None  # release the graph it holds
        if features is None or features.size(0) < labels.size(0):
            raise RuntimeError("class moment matching: no critic features of this generated batch (the G step's D "
                               "forward must run under autograd just before)")
        return g_loss + self.class_moments(features[features.size(0) - labels.size(0):], labels)

    def _g_adversarial(self, fake_logits: Tensor, real_logits: Tensor | None) -> Tensor:
        """G's adversarial term; a relativistic loss also reads D's logits of the real batch."""
        if self.adversarial_loss.relativistic:
            assert real_logits is not None  # both training steps pass them when the loss is relativistic
            return cast(RelativisticGeneratorLoss, self.adversarial_loss.g_loss)(fake_logits, real_logits)
        return cast(GeneratorLoss, self.adversarial_loss.g_loss)(fake_logits)

    def _real_logits_for_g(self, real: Tensor, labels: Tensor) -> Tensor | None:
        """D's logits of the real batch after D's update, which a relativistic G loss compares against (else None).

        One forward without a graph per batch: D does not change during G's steps.
        """
        if not self.adversarial_loss.relativistic:
            return None
        with torch.no_grad():
            return self.discriminator(self._d_input(real), labels)

    def _d_input(self, images: Tensor) -> Tensor:
        """What D sees: the images, augmented when ``augment`` is on (differentiably: G's gradients pass)."""
        if self.d_augment is None:
            return images
        return self.d_augment(images, generator=self.training_rng.generator)

    def _augment_metrics(self) -> dict[str, Tensor]:
        """``train/augment_p`` while the augmentation probability adapts (ADA), else nothing."""
        if self.d_augment is None or not self.d_augment.adaptive:
            return {}
        return {"train/augment_p": self.d_augment.p.clone()}

    def _discriminate(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor | None]:
        """D's logits and, for a discriminator with an auxiliary head, its auxiliary loss (else ``None``)."""
        with_aux = getattr(self.discriminator, "logits_and_aux_loss", None)
        return with_aux(images, labels) if with_aux is not None else (self.discriminator(images, labels), None)

    def _ensure_finite(self, loss: Tensor, network: str, batch_idx: int, fake: Tensor | None = None) -> None:
        if self.check_finite and not bool(torch.isfinite(loss)):
            # Whose numbers went bad: G's images feed both losses, so a NaN there is G's, whichever loss shows it.
            cause = ("; the generator's images hold NaN or inf values, so G diverged"
                     if fake is not None and not bool(torch.isfinite(fake.detach()).all()) else "")
            raise NonFiniteLossError(
                f"{network} loss is {loss.item()} at batch {batch_idx} of epoch {self.current_epoch} "
                f"(global step {self.global_step}){cause}; training stopped before this update was applied. "
                "Lower the learning rate or change the loss; earlier checkpoints are untouched."
            )

    def _real_weights(self, real: Tensor, labels: Tensor) -> Tensor | None:
        """Per-image weights of D's real terms (``atypical_weighting``), from the images before augmentation."""
        return None if self.atypical_weighting is None else self.atypical_weighting(real, labels)

    def _d_loss(self, real_logits: Tensor, fake_logits: Tensor, real_aux: Tensor | None, d_real: Tensor,
                d_fake: Tensor, real_labels: Tensor, real_weights: Tensor | None = None) -> Tensor:
        """D's loss: the adversarial term, the auxiliary loss on real pairs, the penalties and LeCam."""
        # A loss of two arguments (the protocol before real_weights) still works while the weighting is off.
        d_loss = (self.adversarial_loss.d_loss(real_logits, fake_logits) if real_weights is None
                  else self.adversarial_loss.d_loss(real_logits, fake_logits, real_weights))
        if real_aux is not None:
            d_loss = d_loss + real_aux
        for penalty in self.d_penalties:
            d_loss = d_loss + penalty(self.discriminator, d_real, d_fake, real_labels)
        if self.lecam is not None:
            d_loss = d_loss + self.lecam_weight * self.lecam(real_logits, fake_logits)
        if self.d_augment is not None:
            self.d_augment.observe(real_logits.detach())
        return d_loss

    def _log_step(self, d_loss: Tensor, g_loss: Tensor, real_logits: Tensor, fake_logits: Tensor, n: int,
                  batch_idx: int) -> None:
        self._log_train_metrics(
            {
                "train/d_loss": d_loss.detach(),
                "train/g_loss": g_loss.detach(),
                "train/d_real": torch.sigmoid(real_logits.detach()).mean(),
                "train/d_fake": torch.sigmoid(fake_logits.detach()).mean(),
                **self._augment_metrics(),
            },
            n,
            batch_idx,
        )

    @override
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        if not self._first_batch_checked:  # once a fit: a data module of one's own may yield anything
            check_real_batch(batch, self.num_classes, self.image_shape)
            self._first_batch_checked = True
        if self.step_order == "g_first":
            self._g_first_step(batch, batch_idx)
        else:
            self._d_first_step(batch, batch_idx)
        if self.lr_decay > 0:  # manual optimization: Lightning steps no scheduler itself
            for scheduler in cast("list[LambdaLR]", self.lr_schedulers()):
                scheduler.step()

    def _g_first_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """The reference order with one D forward of the generated batch serving both updates.

        G's step and D's step both see D's weights before either update and the same generated images, exactly
        as the reference loop (which forwards the detached images through D a second time). Each backward is
        restricted to its own network's parameters (``inputs=``): G's pass goes through D without computing D's
        weight gradients, D's pass stops at the images (with ``shared_d_backward``, one backward does both where it
        can: :func:`~cgan_lightning.utilities.row_gradient_scale.backward_g_and_d`). Both gradients exist before
        either step, so the two ``step()`` calls commute.
        """
        real, real_labels = batch
        opt_g, opt_d = cast("list[LightningOptimizer]", self.optimizers())  # configure_optimizers returns two
        n = real.size(0)
        fake, fake_labels, z = self._fake_batch(n)
        d_real, d_fake = self._d_input(real), self._d_input(fake)
        if self._row_scale is not None:
            d_fake = self._row_scale.mark(d_fake)
        if self.joint_d_forward:
            logits, _ = self._discriminate(torch.cat((d_real, d_fake)), torch.cat((real_labels, fake_labels)))
            real_logits, fake_logits, real_aux, g_aux = logits[:n], logits[n:], None, None
        else:
            real_logits, real_aux = self._discriminate(d_real, real_labels)
            fake_logits, g_aux = self._discriminate(d_fake, fake_labels)
        g_loss = self._g_regularized(self._g_adversarial(fake_logits, real_logits), fake, z)
        g_loss = self._g_moments_added(g_loss, fake_labels)
        if g_aux is not None:
            g_loss = g_loss + g_aux
        d_loss = self._d_loss(real_logits, fake_logits, real_aux, d_real, d_fake.detach(), real_labels,
                              self._real_weights(real, real_labels))
        self._ensure_finite(g_loss, "generator", batch_idx, fake)
        self._ensure_finite(d_loss, "discriminator", batch_idx, fake)
        opt_g.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        backward_g_and_d(d_loss, g_loss, fake_logits, list(self.generator.parameters()),
                         list(self.discriminator.parameters()), self._row_scale, self.manual_backward)
        opt_g.step()
        opt_d.step()
        if self.generator_ema is not None:
            self.generator_ema.update(self.generator)
        self._log_step(d_loss, g_loss, real_logits, fake_logits, n, batch_idx)

    def _d_first_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """``d_steps_per_g_step`` D steps, then ``g_steps_per_batch`` G steps against the updated D."""
        real, real_labels = batch
        opt_g, opt_d = cast("list[LightningOptimizer]", self.optimizers())  # configure_optimizers returns two
        n = real.size(0)
        # One G forward with its graph kept serves the first D step (detached) and the G step, as in the
        # reference loop; extra D steps draw fresh fakes without a graph.
        fake, fake_labels, z = self._fake_batch(n)
        d_fake_images, d_fake_labels = fake.detach(), fake_labels
        real_weights = self._real_weights(real, real_labels)
        for step in range(self.d_steps_per_g_step):
            if step > 0:
                with torch.no_grad():
                    d_fake_images, d_fake_labels, _ = self._fake_batch(n)
            with self.toggled_optimizer(opt_d):
                d_real, d_fake = self._d_input(real), self._d_input(d_fake_images)
                if self.joint_d_forward:
                    logits, real_aux = self._discriminate(torch.cat((d_real, d_fake)),
                                                          torch.cat((real_labels, d_fake_labels)))
                    real_logits, fake_logits = logits[:n], logits[n:]
                else:
                    real_logits, real_aux = self._discriminate(d_real, real_labels)
                    fake_logits, _ = self._discriminate(d_fake, d_fake_labels)
                d_loss = self._d_loss(real_logits, fake_logits, real_aux, d_real, d_fake, real_labels,
                                      real_weights)
                self._ensure_finite(d_loss, "discriminator", batch_idx, d_fake_images)
                opt_d.zero_grad(set_to_none=True)
                self.manual_backward(d_loss)
                opt_d.step()

        real_logits_for_g = self._real_logits_for_g(real, real_labels)
        for step in range(self.g_steps_per_batch):
            if step > 0:  # the first G step reuses the generated batch D just scored, as the reference loop does
                fake, fake_labels, z = self._fake_batch(n)
            with self.toggled_optimizer(opt_g):
                g_logits, g_aux = self._discriminate(self._d_input(fake), fake_labels)
                g_loss = self._g_regularized(self._g_adversarial(g_logits, real_logits_for_g), fake, z)
                g_loss = self._g_moments_added(g_loss, fake_labels)
                if g_aux is not None:
                    g_loss = g_loss + g_aux
                self._ensure_finite(g_loss, "generator", batch_idx, fake)
                opt_g.zero_grad(set_to_none=True)
                self.manual_backward(g_loss)
                opt_g.step()
            if self.generator_ema is not None:
                self.generator_ema.update(self.generator)
        self._log_step(d_loss, g_loss, real_logits, fake_logits, n, batch_idx)

    @override
    def on_train_epoch_start(self) -> None:
        self._log_window, self._log_window_images = None, 0

    def _log_train_metrics(self, metrics: dict[str, Tensor], n: int, batch_idx: int) -> None:
        """Log the mean of the metrics over the batches since the last log, every ``log_every_n_steps`` batches.

        Tensors go to ``self.log`` as-is: Lightning reduces them on the device, no host sync per step. A mean is
        logged with its number of images as ``batch_size``, so Lightning's epoch means stay the exact image means.
        The window closes at the global batch counts Lightning writes logs at (``trainer.log_every_n_steps``),
        and at the end of each epoch and of training (``log_every_n_steps=0``: only there).
        """
        trainer = self.trainer
        # Each batch makes d_steps_per_g_step + g_steps_per_batch optimizer steps, which global_step counts.
        batches = self.global_step // (self.d_steps_per_g_step + self.g_steps_per_batch)
        interval = log_every_n_steps(trainer)
        if interval != 1:
            weighted = torch.stack([value.float() for value in metrics.values()]) * n
            self._log_window = weighted if self._log_window is None else self._log_window + weighted
            self._log_window_images += n
            last = batch_idx + 1 >= trainer.num_training_batches or 0 <= trainer.max_steps <= self.global_step
            if (interval == 0 or batches % interval) and not last:
                return
            n, self._log_window_images = self._log_window_images, 0
            metrics = dict(zip(metrics, (self._log_window / n).unbind(), strict=True))
            self._log_window = None
        # The progress bar shows the two losses; D's probabilities go to the loggers only.
        self.log_dict({k: v for k, v in metrics.items() if k in PROGRESS_BAR_METRICS}, on_step=True, on_epoch=True,
                      batch_size=n, prog_bar=True)
        self.log_dict({k: v for k, v in metrics.items() if k not in PROGRESS_BAR_METRICS}, on_step=True,
                      on_epoch=True, batch_size=n)
        self.log("train/batches_seen", float(batches), on_step=True, on_epoch=False, batch_size=n)

    @override
    def on_validation_epoch_start(self) -> None:
        self._eval_rng = self._evaluation_rng()

    @override
    def on_test_epoch_start(self) -> None:
        self._eval_rng = self._evaluation_rng()

    def _evaluation_rng(self) -> torch.Generator:
        # The same fakes at every evaluation (comparable across epochs), and the training stream is not touched.
        return torch.Generator(device=self.device).manual_seed(rank_seed(0, self.global_rank))

    def _evaluation_step(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        """Log D's mean probability on real pairs and on as many fresh fakes, under ``{stage}/``."""
        real, labels = batch
        rng = self._eval_rng if self._eval_rng is not None else self._evaluation_rng()
        z = torch.randn(real.size(0), self.latent_dim, device=self.device, generator=rng)
        fake = self.generator(z, labels)
        self.log_dict(
            {
                f"{stage}/d_real": torch.sigmoid(self.discriminator(real, labels)).mean(),
                f"{stage}/d_fake": torch.sigmoid(self.discriminator(fake, labels)).mean(),
            },
            on_epoch=True,
            batch_size=real.size(0),
            sync_dist=True,  # each DDP rank evaluates its own shard: average them (once per epoch)
        )

    @override
    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """D's mean probability on real test pairs and on as many fresh fakes (evaluation callbacks do the rest)."""
        self._evaluation_step(batch, "val")

    @override
    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """As :meth:`validation_step`, logged under ``test/``."""
        self._evaluation_step(batch, "test")
