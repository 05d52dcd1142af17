"""``PretrainedGenerator``: an exported generator, rebuilt from ``config.json`` + ``model.safetensors`` alone.

It needs no Lightning state, no discriminator and no optimizer: only the generator class named in ``config.json``
(``class_path`` + ``init_args``) and its weights. It offers the evaluation protocol
(:class:`~cgan_lightning.metrics.ConditionalSampler`), so the evaluation callbacks and
:func:`~cgan_lightning.metrics.evaluate_generator` score it like a ``ConditionalGAN``.

Example::

    from cgan_lightning.hub import PretrainedGenerator
    g = PretrainedGenerator.from_pretrained("exported/")          # or a Hub repo id: "user/cgan-mnist"
    images = g.sample([3, 7], generator=torch.Generator().manual_seed(0))   # [2, 1, 28, 28] in [-1, 1]
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin, constants
from torch import Tensor, nn

from cgan_lightning.hub.model_card import CARD_TEMPLATE, MINIMAL_CARD_KWARGS
from cgan_lightning.utilities.argument_checks import as_label_tensor, check_latents
from cgan_lightning.utilities.eval_mode import eval_mode

#: ``config.json`` key that marks a folder written by this library, and the format version it holds.
FORMAT_KEY = "cgan_lightning_format"
FORMAT_VERSION = 1
CONFIG_NAME = constants.CONFIG_NAME  # config.json
WEIGHTS_NAME = constants.SAFETENSORS_SINGLE_FILE  # model.safetensors
#: Generator classes importable without ``trust_code=True``: ``config.json`` names a class that gets imported and
#: built, so a downloaded config must not make Python import arbitrary modules unless the user says so.
TRUSTED_PREFIXES = ("cgan_lightning.",)
REQUIRED_KEYS = ("generator", "num_classes", "latent_dim", "image_shape")


def library_version() -> str:
    """The installed cgan-lightning version (the package's ``__version__`` when run from a source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cgan-lightning")
    except PackageNotFoundError:  # pragma: no cover - a source checkout on PYTHONPATH without installation
        from cgan_lightning import __version__

        return __version__


def resolve_class(class_path: str, trust_code: bool = False) -> type[nn.Module]:
    """Import ``class_path`` (``package.module.Class``) and check it is an ``nn.Module`` subclass.

    Raises:
        ValueError: not a dotted path, not importable, not an ``nn.Module``, or outside ``cgan_lightning`` without
            ``trust_code=True``.
    """
    if not isinstance(class_path, str) or "." not in class_path:
        raise ValueError(f"generator class_path must be a dotted import path such as "
                         f"cgan_lightning.nn.dcgan.DCGANGenerator, got {class_path!r}")
    if not class_path.startswith(TRUSTED_PREFIXES) and not trust_code:
        raise ValueError(f"config.json names the generator class {class_path}, outside cgan_lightning: importing it "
                         "runs that package's code. If you trust its source, pass trust_code=True "
                         "(CLI: --trust_code) and make sure the package is installed")
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot import the generator class {class_path} named in config.json ({err}); install the "
                         "package that defines it, or re-export with this library") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"{class_path} named in config.json is not a torch.nn.Module class")
    return cls


def check_config(config: Any, source: str) -> dict[str, Any]:
    """Raise ``ValueError`` unless ``config`` is a cgan-lightning generator config (any other model's, say)."""
    if not isinstance(config, dict):
        raise ValueError(f"{source}: no {CONFIG_NAME} found; expected a folder or Hub repo written by "
                         "`cgan-lightning export --ckpt_path last.ckpt --out DIR`")
    if FORMAT_KEY not in config:
        kind = config.get("model_type") or config.get("architectures") or config.get("_class_name")
        raise ValueError(f"{source}/{CONFIG_NAME} is not a cgan-lightning generator config"
                         + (f" (it describes {kind})" if kind else "")
                         + f": it lacks {FORMAT_KEY!r}. Export a ConditionalGAN checkpoint with `cgan-lightning "
                         "export --ckpt_path last.ckpt --out DIR` and load that folder")
    if config[FORMAT_KEY] != FORMAT_VERSION:
        raise ValueError(f"{source}/{CONFIG_NAME} has {FORMAT_KEY}={config[FORMAT_KEY]!r}; this cgan-lightning reads "
                         f"format {FORMAT_VERSION}: upgrade the library or re-export")
    missing = [key for key in REQUIRED_KEYS if key not in config]
    if missing:
        raise ValueError(f"{source}/{CONFIG_NAME} lacks {', '.join(missing)}; re-export the checkpoint")
    spec = config["generator"]
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise ValueError(f"{source}/{CONFIG_NAME}: 'generator' must be {{'class_path': ..., 'init_args': {{...}}}}, "
                         f"got {spec!r}")
    return config


def check_export_dir(path: Path) -> None:
    """Raise ``FileNotFoundError`` naming the missing file when ``path`` is not a complete exported folder."""
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such directory; pass a folder written by `cgan-lightning export` or a "
                                "Hugging Face Hub repo id such as user/name")
    for name, what in ((CONFIG_NAME, "the architecture"), (WEIGHTS_NAME, "the weights")):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name} is missing ({what}): {path} is not a complete export; "
                                    "write it with `cgan-lightning export --ckpt_path last.ckpt --out "
                                    f"{path}` or copy the file back")


def _looks_like_local_path(source: str) -> bool:
    # A Hub repo id is "name" or "owner/name"; anything else (./x, /x, a/b/c, ~, x/, a trailing slash as shells
    # complete folders) can only be a folder.
    return (source.startswith((".", "/", "~")) or source.endswith("/") or source.count("/") > 1
            or os.sep != "/" and os.sep in source)


class PretrainedGenerator(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="cgan-lightning",
    tags=["cgan-lightning", "conditional-gan", "gan", "image-generation"],
    model_card_template=CARD_TEMPLATE,
):
    """A class-conditional generator with its label space, loadable with ``from_pretrained`` and shareable on the Hub.

    Offers the evaluation protocol: ``num_classes``, ``latent_dim``, ``image_shape`` and
    ``sample(labels, z=None, generator=None)``.

    Args:
        generator: ``{"class_path": ..., "init_args": {...}}``: the generator class, built as
            ``cls(latent_dim, num_classes, image_shape, **init_args)`` (the library's generator protocol).
        num_classes: labels are ``0 .. num_classes - 1``.
        latent_dim: size of z.
        image_shape: ``(channels, height, width)``.
        class_names: a name per label (default ``"0" .. "K-1"``).
        trust_code: allow a ``class_path`` outside ``cgan_lightning`` (it is imported).

    Raises:
        ValueError: a bad ``class_path``, shape or ``class_names``.
    """

    # Set only on some instances, after construction (declared for the type checker; no class-level value):
    #: which weights an exported generator holds ("EMA weights" / "raw weights"), set by ``pretrained_from_gan``.
    weights_kind: str
    #: the ``config.json`` read by ``from_pretrained``.
    exported_config: dict | None

    def __init__(
        self,
        generator: dict[str, Any],
        num_classes: int,
        latent_dim: int,
        image_shape: Sequence[int],
        class_names: Sequence[str] | None = None,
        trust_code: bool = False,
    ) -> None:
        super().__init__()
        shape = tuple(int(v) for v in image_shape)
        if len(shape) != 3 or min(shape) <= 0:
            raise ValueError(f"image_shape must be (channels, height, width) of positive ints, got {image_shape}")
        if num_classes <= 0 or latent_dim <= 0:
            raise ValueError(f"num_classes and latent_dim must be positive, got {num_classes} and {latent_dim}")
        names = [str(k) for k in range(num_classes)] if class_names is None else [str(n) for n in class_names]
        if len(names) != num_classes:
            raise ValueError(f"class_names has {len(names)} names for {num_classes} classes")
        cls = resolve_class(generator["class_path"], trust_code)
        init_args = dict(generator.get("init_args") or {})
        self.spec = {"class_path": generator["class_path"], "init_args": init_args}
        self.num_classes = int(num_classes)
        self.latent_dim = int(latent_dim)
        self.image_shape = shape
        self.class_names = names
        self.generator = cls(self.latent_dim, self.num_classes, shape, **init_args)

    # ------------------------------------------------------------------------------------------ sampling
    @property
    def device(self) -> torch.device:
        """Where the weights live."""
        return next((p.device for p in self.parameters()), torch.device("cpu"))

    def forward(self, z: Tensor, labels: Tensor | Sequence[int]) -> Tensor:
        """Images ``[B, C, H, W]`` in ``[-1, 1]`` for latents ``[B, latent_dim]`` and labels ``[B]``."""
        labels = as_label_tensor(labels, self.num_classes, device=self.device)
        check_latents(z, labels.numel(), self.latent_dim)
        return self.generator(z.to(self.device), labels)

    @torch.no_grad()
    def sample(self, labels: Tensor | Sequence[int] | int, z: Tensor | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """One image per label, in eval mode and without gradients (the train/eval flag is restored).

        Args:
            labels: class ids ``[B]`` (tensor, list or single int).
            z: latents ``[B, latent_dim]``; drawn from N(0, I) when omitted.
            generator: a ``torch.Generator`` that makes the draw of z reproducible.

        Raises:
            ValueError: labels out of range or z of the wrong shape.
        """
        labels = as_label_tensor(labels, self.num_classes, device=self.device)
        if z is None:
            gen_device = generator.device if generator is not None else self.device
            z = torch.randn(labels.numel(), self.latent_dim, generator=generator, device=gen_device)
        with eval_mode(self):
            return self(z, labels)

    def label_ids(self, labels: Sequence[str | int]) -> list[int]:
        """Class ids of ``labels`` given as ids or as names from ``class_names``.

        Raises:
            ValueError: a name or id this generator does not know.
        """
        ids = []
        for label in labels:
            if isinstance(label, str) and label in self.class_names:
                ids.append(self.class_names.index(label))
            elif str(label).lstrip("-").isdigit() and 0 <= int(label) < self.num_classes:
                ids.append(int(label))
            else:
                raise ValueError(f"unknown label {label!r}: use ids 0..{self.num_classes - 1} or one of "
                                 f"{', '.join(self.class_names)}")
        return ids

    # ------------------------------------------------------------------------------------ serialization
    def hub_config(self) -> dict[str, Any]:
        """What ``config.json`` holds: the architecture and label space, and the library that wrote it."""
        return {FORMAT_KEY: FORMAT_VERSION, "generator": self.spec, "num_classes": self.num_classes,
                "latent_dim": self.latent_dim, "image_shape": list(self.image_shape), "class_names": self.class_names,
                "library": "cgan-lightning", "library_version": library_version()}

    # ignore[override]: ``config`` narrowed to a dict (the mixin's takes a dataclass too); other keywords via kwargs.
    def save_pretrained(self, save_directory: str | Path, *, config: dict | None = None,  # type: ignore[override]
                        **kwargs: Any) -> str | None:
        """``PyTorchModelHubMixin.save_pretrained`` with this generator's :meth:`hub_config` as ``config.json``.

        Without ``model_card_kwargs`` the card says no evidence was attached; ``cgan-lightning export`` fills it.
        """
        kwargs.setdefault("model_card_kwargs", dict(MINIMAL_CARD_KWARGS))
        return super().save_pretrained(save_directory, config=config or self.hub_config(), **kwargs)

    def generate_model_card(self, *args: Any, **kwargs: Any) -> Any:
        """The mixin's card from :data:`~cgan_lightning.hub.model_card.CARD_TEMPLATE`, filled with this generator's
        architecture and labels; ``kwargs`` (``model_card_kwargs``) add the evidence, grid and training config."""
        values = {**MINIMAL_CARD_KWARGS, "class_path": self.spec["class_path"],
                  "init_args": json.dumps(self.spec["init_args"], sort_keys=True), "num_classes": self.num_classes,
                  "class_names": ", ".join(self.class_names), "image_shape": list(self.image_shape),
                  "latent_dim": self.latent_dim, "library_version": library_version(), "load_name": "user/name"}
        values.update(kwargs)
        return super().generate_model_card(*args, **values)

    # ignore[override]: as save_pretrained, ``config`` is narrowed to a dict.
    def push_to_hub(self, repo_id: str, *, config: dict | None = None, **kwargs: Any) -> str:  # type: ignore[override]
        """``PyTorchModelHubMixin.push_to_hub``: upload weights, ``config.json`` and a card (needs a token).

        To share an exported folder with its evidence card and PNGs as they are, use
        :func:`cgan_lightning.hub.export.push_export_to_hub` (``cgan-lightning export ... --push_to_hub REPO``).
        """
        return super().push_to_hub(repo_id, config=config or self.hub_config(), **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *, trust_code: bool = False,
                        map_location: str = "cpu", **kwargs: Any) -> PretrainedGenerator:
        """Rebuild an exported generator from a local folder or a Hugging Face Hub repo id.

        Args:
            pretrained_model_name_or_path: a folder written by ``cgan-lightning export`` or ``save_pretrained``,
                or a Hub repo id (``user/name``; ``HF_HUB_OFFLINE=1`` reads only the local cache).
            trust_code: allow a generator class outside ``cgan_lightning`` (config.json's class_path is imported).
            map_location: device of the weights.
            kwargs: passed to ``PyTorchModelHubMixin.from_pretrained`` (``revision``, ``cache_dir``, ``token`` ...).

        Raises:
            FileNotFoundError: the folder or one of its files (``config.json``, ``model.safetensors``) is missing, or
                the Hub repo cannot be reached.
            ValueError: ``config.json`` describes another kind of model, or the weights do not fit its architecture.
        """
        source = str(pretrained_model_name_or_path)
        if os.path.isdir(source) or _looks_like_local_path(source):
            check_export_dir(Path(source).expanduser())
            source = str(Path(source).expanduser())
        from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

        try:
            return super().from_pretrained(source, trust_code=trust_code, map_location=map_location,
                                           strict=True, **kwargs)
        except (LocalEntryNotFoundError, HfHubHTTPError) as err:
            raise FileNotFoundError(f"cannot fetch {source} from the Hugging Face Hub ({type(err).__name__}: "
                                    f"{str(err).splitlines()[0]}); check the repo id and network, or pass a "
                                    "local folder") from None
        except HFValidationError as err:
            raise FileNotFoundError(f"{source} is neither a local folder nor a valid Hub repo id ({err})") from None

    @classmethod
    def _from_pretrained(cls, *, model_id: str, config: dict | None = None, map_location: str = "cpu",
                         strict: bool = True, trust_code: bool = False, **kwargs: Any) -> PretrainedGenerator:
        # The mixin has read config.json (or found none) and passes its __init__ keys in kwargs.
        check_config(config, model_id)
        init = {key: kwargs[key] for key in ("generator", "num_classes", "latent_dim", "image_shape", "class_names")
                if key in kwargs}
        model = cls(**init, trust_code=trust_code)
        model.exported_config = config
        hub_kwargs = {k: kwargs[k] for k in ("revision", "cache_dir", "force_download", "local_files_only", "token")
                      if k in kwargs}
        if os.path.isdir(model_id):
            weights = os.path.join(model_id, WEIGHTS_NAME)
        else:
            from huggingface_hub import hf_hub_download

            weights = hf_hub_download(repo_id=model_id, filename=WEIGHTS_NAME, **hub_kwargs)
        return cls._load_weights(model, weights, map_location, strict)

    @staticmethod
    def _load_weights(model: PretrainedGenerator, weights: str, map_location: str, strict: bool
                      ) -> PretrainedGenerator:
        from safetensors import SafetensorError
        from safetensors.torch import load_model

        try:
            load_model(model, weights, strict=strict, device=map_location)
        except SafetensorError as err:
            raise ValueError(f"{weights} is not a readable safetensors file ({err}): truncated or corrupt? "
                             "Re-export or re-download it") from None
        except RuntimeError as err:
            detail = " ".join(str(err).split())[:300]
            raise ValueError(f"the weights in {weights} do not fit the generator that config.json describes "
                             f"({model.spec['class_path']} with {model.spec['init_args']}): {detail}. Keep the "
                             "config.json and model.safetensors of the same export together") from None
        return model.eval()


__all__ = ["CONFIG_NAME", "FORMAT_KEY", "FORMAT_VERSION", "PretrainedGenerator", "WEIGHTS_NAME", "check_config",
           "check_export_dir", "library_version", "resolve_class"]
