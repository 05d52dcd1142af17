"""Export a trained ``ConditionalGAN`` as a shareable generator folder (Hugging Face Hub layout).

``DIR/model.safetensors`` + ``DIR/config.json`` (written by ``PyTorchModelHubMixin.save_pretrained``), a model
card ``DIR/README.md`` with the per-class evidence, ``DIR/interference.png`` (and ``traversal.png`` when
evaluated), ``DIR/evaluation.json`` (the scores) and ``DIR/training_config.yaml``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from cgan_lightning.hub.model_card import CARD_MARKER, evidence_markdown
from cgan_lightning.hub.pretrained import PretrainedGenerator, library_version
from cgan_lightning.metrics.evaluate import evaluate_generator
from cgan_lightning.metrics.interference import interference_images
from cgan_lightning.metrics.sampling import seeded_normal
from cgan_lightning.utilities.image_grids import image_grid, save_png

#: Files an export writes (a second export into the same folder replaces them).
EXPORT_FILES = ("model.safetensors", "config.json", "README.md", "interference.png", "traversal.png",
                "evaluation.json", "training_config.yaml")
_DEFAULT_GENERATOR = {"class_path": "cgan_lightning.nn.mlp.MLPGenerator", "init_args": {}}


def generator_spec(model: Any) -> dict[str, Any]:
    """``{"class_path", "init_args"}`` of the model's generator, from its ``generator`` hyperparameter.

    The CLI records it as a ``class_path`` / ``init_args`` dict; from Python it may be a class or a
    ``functools.partial`` of one; ``None`` means the default MLP.

    Raises:
        ValueError: the generator factory is something else (a lambda, a function): its arguments cannot be written.
    """
    factory = model.hparams.get("generator")
    if factory is None:
        return dict(_DEFAULT_GENERATOR)
    if isinstance(factory, Mapping) and "class_path" in factory:
        return {"class_path": str(factory["class_path"]), "init_args": dict(factory.get("init_args") or {})}
    keywords: dict[str, Any] = {}
    if isinstance(factory, functools.partial):
        # jsonargparse's factories are partial(<instantiator>, ..., Class, **init_args): take the one class.
        classes = [f for f in (factory.func, *factory.args) if isinstance(f, type)]
        if len(classes) == 1:
            keywords = dict(factory.keywords)
            factory = classes[0]
    if isinstance(factory, type):
        return {"class_path": f"{factory.__module__}.{factory.__qualname__}", "init_args": keywords}
    raise ValueError(f"cannot export a generator built by {factory!r}: config.json needs a class and its keyword "
                     "arguments. Build the model with generator=SomeGenerator or functools.partial(SomeGenerator, "
                     "k=v), or a class_path config")


def sampling_beyond_generator(model: Any) -> str | None:
    """What a GAN's ``sample`` does that its generator alone does not (wider latents, rejection by D), or ``None``."""
    scale, min_prob = getattr(model, "sample_latent_scale", 1.0), getattr(model, "sample_min_class_prob", 0.0)
    tilt = getattr(model, "sample_tilt_temperature", 0.0)
    if scale == 1 and min_prob == 0 and tilt == 0:
        return None
    return (f"sample_latent_scale={scale}, sample_min_class_prob={min_prob}, sample_tilt_temperature={tilt}: the "
            "export holds G only and samples N(0, I) latents without rejection by D's class head or the feature tilt")


def pretrained_from_gan(model: Any, ema: bool | None = None) -> PretrainedGenerator:
    """A :class:`PretrainedGenerator` on the CPU holding a copy of the GAN's generator weights.

    It samples as G alone: the model's ``sample_latent_scale``, ``sample_min_class_prob`` and
    ``sample_tilt_temperature`` (wider latents, rejection by D's class head, the feature tilt) do not travel with it.

    Args:
        model: a :class:`~cgan_lightning.ConditionalGAN`.
        ema: the EMA of G's weights (``True``), the raw weights (``False``), or the EMA when the model keeps one.

    Raises:
        ValueError: ``ema=True`` for a model without EMA; a generator factory that cannot be exported.
    """
    keeps_ema = getattr(model, "generator_ema", None) is not None
    if ema and not keeps_ema:
        raise ValueError("ema=True but this model keeps no EMA of G's weights (trained without ema_decay): "
                         "export the raw weights instead")
    names = getattr(model, "class_names", None) or model.hparams.get("class_names")
    pretrained = PretrainedGenerator(generator_spec(model), model.num_classes, model.latent_dim,
                                     list(model.image_shape), class_names=names, trust_code=True)
    source = model.generator_ema.module if keeps_ema and ema is not False else model.generator
    pretrained.generator.load_state_dict({k: v.detach().cpu() for k, v in source.state_dict().items()})
    pretrained.weights_kind = "EMA weights" if source is not model.generator else "raw weights"
    return pretrained.eval()


def write_interference_grid(generator: PretrainedGenerator, out: Path, n_styles: int = 8, seed: int = 0) -> Path:
    """``out/interference.png``: ``n_styles`` latents (rows) rendered with every label (columns), as the callback."""
    with torch.no_grad():
        images = interference_images(generator, seeded_normal((n_styles, generator.latent_dim), seed),
                                     generator.device)
    return save_png(image_grid(images, generator.num_classes), out / "interference.png")


def _finite(scores: Mapping[str, float]) -> dict[str, float | None]:
    return {key: (float(v) if math.isfinite(float(v)) else None) for key, v in scores.items()}


def export_generator(
    model: Any,
    out: str | Path,
    *,
    scores: Mapping[str, float] | None = None,
    datamodule: Any = None,
    ema: bool | None = None,
    samples_per_class: int = 1000,
    seed: int = 0,
    batch_size: int = 1000,
    classifier: str | Path | None = None,
    training_config: str | None = None,
    source: str = "a ConditionalGAN",
    load_name: str | None = None,
    evidence_note: str | None = None,
) -> Path:
    """Write the generator of ``model`` and its model card to ``out``; return ``out``.

    Args:
        model: a :class:`~cgan_lightning.ConditionalGAN`.
        out: the folder to write (created; files of an earlier export there are replaced, other files kept). The
            files are written beside it first and moved in only when all are written.
        scores: evidence already measured (e.g. the callbacks' last ``val/...`` metrics); else measured on
            ``datamodule`` with :func:`~cgan_lightning.metrics.evaluate_generator`; else the card says none was.
        datamodule: real images for the evaluation (its ``val_dataloader``, the eval split).
        ema: as in :func:`pretrained_from_gan`.
        samples_per_class, seed, batch_size, classifier: as in ``evaluate_generator``.
        training_config: YAML text of the run's config (``config.yaml``); default: the model's hyperparameters.
        source: where the weights come from, for the card (e.g. the checkpoint path and epoch).
        load_name: the name users load it by, for the card's snippets (default: the folder name).
        evidence_note: a sentence saying how ``scores`` were measured, for the card.

    Raises:
        ValueError: see :func:`pretrained_from_gan`.
        NotADirectoryError: ``out`` is a file.
        FileExistsError: ``out`` holds a ``README.md`` that is not a cgan-lightning model card.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; give a folder to write the export into")
    check_no_foreign_card(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Everything is written into a staging folder beside ``out`` and moved in at the end: an export that fails (bad
    # evaluation data, a generator that cannot be exported) leaves ``out`` and an earlier export in it as they were.
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        _write_export(model, staging, scores=scores, datamodule=datamodule, ema=ema,
                      samples_per_class=samples_per_class, seed=seed, batch_size=batch_size, classifier=classifier,
                      training_config=training_config, source=source, load_name=load_name or out.name,
                      evidence_note=evidence_note)
        out.mkdir(exist_ok=True)
        for name in EXPORT_FILES:  # an earlier export's file that this one does not write (traversal.png) goes
            (out / name).unlink(missing_ok=True)
        for path in staging.iterdir():
            os.replace(path, out / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def check_no_foreign_card(out: Path) -> None:
    """Refuse to export into a folder whose ``README.md`` no export wrote: the model card would replace it.

    Raises:
        FileExistsError: ``out/README.md`` exists and is not a cgan-lightning model card.
    """
    readme = out / "README.md"
    if readme.is_file() and CARD_MARKER not in readme.read_text(errors="replace"):
        raise FileExistsError(f"{readme} exists and is not a cgan-lightning model card; the export writes its card "
                              "there. Export into another (new or empty) folder, or move that README.md away")


def _write_export(model: Any, out: Path, *, scores: Mapping[str, float] | None, datamodule: Any, ema: bool | None,
                  samples_per_class: int, seed: int, batch_size: int, classifier: str | Path | None,
                  training_config: str | None, source: str, load_name: str, evidence_note: str | None) -> None:
    """:func:`export_generator`'s files, written into the empty folder ``out``."""
    generator = pretrained_from_gan(model, ema)
    beyond = sampling_beyond_generator(model)
    if beyond is not None:
        # The scores were measured on samples the exported generator cannot draw: measure it afresh, or say none was.
        warnings.warn(f"{beyond}; its model card's evidence is measured on the exported generator itself"
                      + ("" if scores is None else ", not taken from the scores given"), UserWarning, stacklevel=3)
        scores = None
    how = evidence_note or ""
    if scores is None and datamodule is not None:
        scores = evaluate_generator(generator, datamodule, samples_per_class=samples_per_class, seed=seed,
                                    batch_size=batch_size, classifier=classifier, output_dir=out)
        dataset = getattr(datamodule, "dataset", None) or type(datamodule).__name__
        judge = "the shipped MNIST classifier" if classifier is None else f"the classifier `{Path(classifier).name}`"
        how = (f"Measured at export by `evaluate_generator` on the eval split (`val_dataloader`, "
               f"dataset `{dataset}`): {samples_per_class} samples per class, seed {seed}; FID on {judge}'s "
               "features, accuracy = the classifier's agreement with the requested label.")
    if not (out / "interference.png").exists():
        write_interference_grid(generator, out, seed=seed)
    if scores is None:
        evidence = ("Not measured: no evaluation data was given. Re-export with `--data_dir DATA` (the folder "
                    "holding MNIST/raw) to put the per-class FID and accuracy here.")
    else:
        evidence = evidence_markdown(scores, generator.class_names, how=how)
        (out / "evaluation.json").write_text(json.dumps(_finite(scores), indent=2, sort_keys=True) + "\n")
    if training_config is None:
        hparams = {k: v for k, v in dict(model.hparams).items() if not k.startswith("_")}
        training_config = "# the model's hyperparameters (no config.yaml was found beside the checkpoint)\n" + \
            yaml.safe_dump({"model": json.loads(json.dumps(hparams, default=str))}, sort_keys=False)
    (out / "training_config.yaml").write_text(training_config)
    card = {"weights": generator.weights_kind, "source": source, "evidence": evidence,
            "interference": "Each row is one latent z rendered with every label (columns): the label should decide "
                            "the class and z only its style.\n\n![interference grid](interference.png)",
            "training_config": training_config.strip(), "load_name": load_name,
            "library_version": library_version()}
    generator.save_pretrained(out, model_card_kwargs=card)


def find_training_config(ckpt_path: Path) -> Path | None:
    """The run's ``config.yaml`` beside the checkpoint or one folder up (LightningCLI's ``<run>/checkpoints/``)."""
    for folder in (ckpt_path.parent, ckpt_path.parent.parent):
        if (folder / "config.yaml").is_file():
            return folder / "config.yaml"
    return None


def check_mnist_run(config_file: Path | None) -> None:
    """Refuse ``--data_dir`` (MNIST-family data) for a run whose ``config.yaml`` trained on another data module.

    Raises:
        ValueError: the run's data module is not :class:`~cgan_lightning.data.MNISTDataModule`.
    """
    if config_file is None:
        return
    data = (yaml.safe_load(config_file.read_text()) or {}).get("data")
    class_path = data.get("class_path") if isinstance(data, Mapping) else None
    if class_path is not None and class_path.rsplit(".", 1)[-1] != "MNISTDataModule":
        raise ValueError(f"--data_dir evaluates on MNIST, Fashion-MNIST or KMNIST, but this run trained on "
                         f"{class_path} ({config_file}). Export without --data_dir, or from Python with "
                         "export_generator(model, out, datamodule=<that data module>, classifier=<its classifier "
                         "file>) to put its per-class evidence in the card (docs/sharing.md)")


def export_checkpoint(
    ckpt_path: str | Path,
    out: str | Path,
    *,
    data_dir: str | Path | None = None,
    ema: bool | None = None,
    samples_per_class: int = 1000,
    seed: int = 0,
    batch_size: int = 1000,
    classifier: str | Path | None = None,
    trust_checkpoint: bool = False,
    load_name: str | None = None,
) -> Path:
    """Load a ``cgan-lightning fit`` checkpoint and :func:`export_generator` it, evaluating on ``data_dir``.

    Raises:
        FileNotFoundError: the checkpoint (or the data under ``data_dir``) is missing.
        CheckpointError: (a ``ValueError``) the checkpoint is damaged or not a ConditionalGAN one.
        ValueError: ``data_dir`` for a run that trained on another data module than MNIST's.
    """
    from cgan_lightning.data.mnist import MNISTDataModule
    from cgan_lightning.module import ConditionalGAN

    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (give the last.ckpt written by `cgan-lightning fit`)")
    model = ConditionalGAN.load_from_checkpoint(path, map_location="cpu", weights_only=not trust_checkpoint)
    raw = torch.load(path, map_location="cpu", weights_only=not trust_checkpoint, mmap=True)
    data_hparams = dict(raw.get("datamodule_hyper_parameters") or {})
    config_file = find_training_config(path)
    datamodule = None
    if data_dir is not None:
        check_mnist_run(config_file)
        datamodule = MNISTDataModule(str(data_dir), download=False, dataset=data_hparams.get("dataset", "mnist"),
                                     batch_size=batch_size)
    training_config = (f"# {config_file}\n" + config_file.read_text()) if config_file else None
    source = f"`{path.name}` (epoch {raw.get('epoch', '?')}, global step {raw.get('global_step', '?')})"
    return export_generator(model, out, datamodule=datamodule, ema=ema, samples_per_class=samples_per_class,
                            seed=seed, batch_size=batch_size, classifier=classifier, training_config=training_config,
                            source=source, load_name=load_name)


def push_export_to_hub(folder: str | Path, repo_id: str, *, private: bool | None = None, token: str | None = None,
                       commit_message: str = "Upload cgan-lightning generator") -> str:
    """Upload an exported folder as it is (weights, config, evidence card, PNGs) to a Hub model repo.

    Needs network and a token (``hf auth login`` or ``HF_TOKEN``); returns the commit URL.

    Raises:
        FileNotFoundError: ``folder`` is not a complete export.
    """
    from huggingface_hub import HfApi

    from cgan_lightning.hub.pretrained import check_export_dir

    check_export_dir(Path(folder))
    api = HfApi(token=token)
    repo = api.create_repo(repo_id=repo_id, private=private, exist_ok=True, repo_type="model")
    return str(api.upload_folder(repo_id=repo.repo_id, folder_path=str(folder), repo_type="model",
                                 commit_message=commit_message))


__all__ = ["EXPORT_FILES", "check_mnist_run", "check_no_foreign_card", "export_checkpoint", "export_generator",
           "find_training_config", "generator_spec", "pretrained_from_gan", "push_export_to_hub",
           "sampling_beyond_generator", "write_interference_grid"]
