"""Real-data floors of the evidence metrics: the real training split scored as if it were generated.

Every metric of ``PerClassFID``, ``SampleQuality`` and ``ClassificationAccuracyScore`` is computed with the real
training split in place of generated images, against the real evaluation split, in the shipped classifier's feature
space. No generator can be expected to beat these numbers by more than noise: they are the targets' floors.

    OMP_NUM_THREADS=1 python benchmarks/real_floors.py --data_dir ../shared/data

Prints one per-class table (the one ``cgan-lightning validate`` prints) and the CAS timing.
"""

from __future__ import annotations

import argparse
import time

import torch

from cgan_lightning.data.mnist import MNISTDataModule, normalize
from cgan_lightning.metrics.cas import accuracy_scores, class_hits, fit_classifier
from cgan_lightning.metrics.features import ClassifierFeatures
from cgan_lightning.metrics.kid import PerClassKID
from cgan_lightning.metrics.memorization import memorization
from cgan_lightning.metrics.per_class_scores import PerClassScores, features_of
from cgan_lightning.metrics.prdc import PerClassPRDC
from cgan_lightning.metrics.report import per_class_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--cas_epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = MNISTDataModule(args.data_dir, download=False)
    train_images, train_labels = data.split("train")
    eval_images, eval_labels = data.split("test")
    train_x, eval_x = normalize(train_images), normalize(eval_images)
    extractor = ClassifierFeatures()
    k = data.num_classes

    def feats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = [features_of(images[i : i + 1000], extractor, extractor) for i in range(0, len(images), 1000)]
        return torch.cat([f for f, _ in out]), torch.cat([p for _, p in out])  # type: ignore[misc]

    start = time.perf_counter()
    train_f, train_pred = feats(train_x)
    eval_f, _ = feats(eval_x)
    scores = PerClassScores(k, extractor.num_features)
    scores.update_real(eval_f, eval_labels)
    scores.update_fake(train_f, train_labels, train_pred)
    prdc = PerClassPRDC(k)
    prdc.update(eval_f, eval_labels, real=True)
    prdc.update(train_f, train_labels, real=False)
    kid = PerClassKID(k, extractor.num_features, seed=args.seed)
    kid.update(eval_f, eval_labels, real=True)
    kid.update(train_f, train_labels, real=False)
    # Memorization floor: one half of the evaluation split scored against thresholds set by the other half.
    half = torch.arange(len(eval_labels)) % 2 == 0
    mem = memorization(eval_f[half], eval_labels[half], train_f, eval_f[~half], eval_labels[~half], k).scores
    # Coverage grows with the number of samples scored per real one: the callbacks score as many generated images
    # per class as the evaluation split holds, so the matched floor pits the two halves of that split (1:1).
    halves = PerClassPRDC(k)
    halves.update(eval_f[half], eval_labels[half], real=True)
    halves.update(eval_f[~half], eval_labels[~half], real=False)
    matched = {f"{key} (halves of eval, 1:1)": value for key, value in halves.compute().items()
               if key.endswith("/mean") or key.startswith("coverage/")}
    results = {**scores.compute(), **prdc.compute(), **kid.compute(), **mem}
    feature_seconds = time.perf_counter() - start

    start = time.perf_counter()
    classifier = fit_classifier(train_x, train_labels, k, epochs=args.cas_epochs, seed=args.seed)
    correct, total = class_hits(classifier, [(eval_x, eval_labels)], "cpu")
    cas_seconds = time.perf_counter() - start
    results.update(accuracy_scores(correct, total, "cas"))
    print(f"train split {len(train_labels)} images, evaluation split {len(eval_labels)}; "
          f"torch threads {torch.get_num_threads()}")
    print(per_class_table({f"val/{key}": value for key, value in results.items()}))
    print("means: " + ", ".join(f"{key} {value:.4f}" for key, value in sorted(results.items())
                                 if key.endswith(("/mean", "/overall", "/worst"))))
    print("matched counts: " + ", ".join(f"{key} {value:.4f}" for key, value in matched.items()))
    print(f"features + FID/KID/PRDC/memorization: {feature_seconds:.1f} s; CAS ({args.cas_epochs} epochs on "
          f"{len(train_labels)} images, tested on {len(eval_labels)}): {cas_seconds:.1f} s")


if __name__ == "__main__":
    main()
