"""Image-space FID with a feature extractor this package trains: a small CNN digit classifier.

No Inception weights ship offline, so the FID here is computed on the penultimate-layer
activations (`feature_dim`, default 128) of `ImageClassifier`, a small convolutional classifier
trained with optax on the same domain as the images it scores (e.g. MNIST digits decoded by the
package autoencoder). It is **not** the standard Inception FID: values are comparable only
between runs that use the same extractor, which `image_fid` names next to every value.

The Fréchet distance of Gaussians fitted to the two feature sets is `tsu_core.frechet`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from tsu_core.frechet import sample_frechet_distance
from xut_flow.modules import assign, in_batches, load_module, save_module

logger = logging.getLogger(__name__)

_LABEL = re.compile(r"label(\d+)")


@dataclass(frozen=True)
class ClassifierConfig:
    """Size and training budget of the feature-extractor classifier (defaults suit 32x32 MNIST)."""

    width: int = 32
    feature_dim: int = 128
    steps: int = 1500
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 0


class ImageClassifier(nnx.Module):
    """conv 3x3 -> conv 3x3 stride 2 -> conv 3x3 stride 2 -> flatten -> dense `feature_dim`
    (the features) -> dense `num_classes` (logits). Images (N, H, W, C) in [-1, 1]."""

    def __init__(
        self,
        image_shape: Sequence[int],
        num_classes: int,
        width: int = 32,
        feature_dim: int = 128,
        *,
        rngs: nnx.Rngs,
    ):
        height, image_width, channels = (int(size) for size in image_shape)
        if height % 4 or image_width % 4:
            raise ValueError(
                f"image_shape: expected height and width divisible by 4, got {tuple(image_shape)}"
            )
        self.image_shape = (height, image_width, channels)
        self.num_classes, self.width, self.feature_dim = num_classes, width, feature_dim
        self.conv_in = nnx.Conv(channels, width, (3, 3), rngs=rngs)
        self.conv_down = nnx.Conv(width, 2 * width, (3, 3), strides=(2, 2), rngs=rngs)
        self.conv_down_again = nnx.Conv(2 * width, 2 * width, (3, 3), strides=(2, 2), rngs=rngs)
        flat = (height // 4) * (image_width // 4) * 2 * width
        self.dense = nnx.Linear(flat, feature_dim, rngs=rngs)
        self.head = nnx.Linear(feature_dim, num_classes, rngs=rngs)
        # Recorded by `train_classifier` so the extractor's name can state how good it is.
        self.train_accuracy = nnx.Variable(jnp.asarray(jnp.nan, jnp.float32))
        self.train_steps = nnx.Variable(jnp.asarray(0, jnp.int32))

    def features(self, images: jax.Array) -> jax.Array:
        """Penultimate activations (N, feature_dim) of images (N, H, W, C)."""
        hidden = jax.nn.silu(self.conv_in(images))
        hidden = jax.nn.silu(self.conv_down(hidden))
        hidden = jax.nn.silu(self.conv_down_again(hidden))
        return jax.nn.silu(self.dense(hidden.reshape(hidden.shape[0], -1)))

    def __call__(self, images: jax.Array) -> jax.Array:
        """Class logits (N, num_classes)."""
        return self.head(self.features(images))


def labels_from_keys(keys: Sequence[str]) -> np.ndarray:
    """Class ids (N,) from shard keys written by `prepare.build_shards` ("train-12-label7")."""
    labels = []
    for key in keys:
        match = _LABEL.search(key)
        if match is None:
            raise ValueError(
                f"shard key {key!r}: expected a 'label<class id>' part (as written by "
                "`xut-flow prepare`); pass labels explicitly for other shards"
            )
        labels.append(int(match.group(1)))
    return np.asarray(labels, np.int64)


def train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    config: ClassifierConfig = ClassifierConfig(),
    *,
    num_classes: int | None = None,
    progress: bool = True,
) -> ImageClassifier:
    """Fit an `ImageClassifier` to images (N, H, W, C) in [-1, 1] and class ids (N,) with Adam
    and softmax cross-entropy for `config.steps` steps; records its training-set accuracy."""
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels, np.int64)
    if images.ndim != 4 or labels.shape != (len(images),):
        raise ValueError(
            f"expected images (N, H, W, C) and labels (N,), got {images.shape} and {labels.shape}"
        )
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    model = ImageClassifier(
        images.shape[1:], num_classes, config.width, config.feature_dim, rngs=nnx.Rngs(config.seed)
    )
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    optimizer = optax.adam(config.learning_rate)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, batch, batch_labels):
        def loss_function(params):
            logits = nnx.merge(graphdef, params, rest)(batch)
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch_labels).mean()

        loss, grads = jax.value_and_grad(loss_function)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    generator = np.random.default_rng(config.seed)
    bar = tqdm(range(config.steps), disable=not progress, desc="classifier")
    loss = jnp.nan
    for index in bar:
        chosen = generator.integers(0, len(images), config.batch_size)
        params, opt_state, loss = step(
            params, opt_state, jnp.asarray(images[chosen]), jnp.asarray(labels[chosen])
        )
        if index % 100 == 0:
            bar.set_postfix(loss=f"{float(loss):.4f}")
    model = nnx.merge(graphdef, params, rest)
    train_accuracy = accuracy(model, images, labels)
    assign(model.train_accuracy, jnp.asarray(train_accuracy, jnp.float32))
    assign(model.train_steps, jnp.asarray(config.steps, jnp.int32))
    logger.info("classifier: final loss %.4f, train accuracy %.4f", float(loss), train_accuracy)
    return model


def accuracy(
    classifier: ImageClassifier, images: np.ndarray, labels: np.ndarray, batch_size: int = 512
) -> float:
    """Fraction of images (N, H, W, C) whose arg-max class equals labels (N,)."""
    logits = in_batches(lambda batch: classifier(batch), images, batch_size)
    return float(np.mean(logits.argmax(-1) == np.asarray(labels)))


def extract_features(
    classifier: ImageClassifier, images: np.ndarray, batch_size: int = 512
) -> np.ndarray:
    """Features (N, feature_dim) float64 of images (N, H, W, C) in [-1, 1]."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[1:] != classifier.image_shape:
        raise ValueError(
            f"images: expected (N, {', '.join(map(str, classifier.image_shape))}) as the "
            f"classifier was trained on, got {images.shape}"
        )
    return in_batches(lambda batch: classifier.features(batch), images, batch_size).astype(
        np.float64
    )


def extractor_name(classifier: ImageClassifier) -> str:
    """The string stated next to every FID: which features, how the classifier was trained."""
    height, width, channels = classifier.image_shape
    return (
        f"xut-flow ImageClassifier ({classifier.num_classes} classes, {height}x{width}x{channels} "
        f"images, {int(classifier.train_steps[...])} Adam steps), "
        f"{classifier.feature_dim}-d penultimate features, "
        f"train accuracy {float(classifier.train_accuracy[...]):.4f}; not Inception"
    )


def image_fid(
    generated_images: np.ndarray,
    reference_images: np.ndarray,
    classifier: ImageClassifier,
    batch_size: int = 512,
) -> dict[str, object]:
    """FID between two image sets (N, H, W, C) in [-1, 1] on the classifier's features.

    Returns `fid`, `extractor` (see `extractor_name`), `num_generated`, `num_reference`.
    """
    generated = extract_features(classifier, generated_images, batch_size)
    reference = extract_features(classifier, reference_images, batch_size)
    return {
        "fid": sample_frechet_distance(generated, reference),
        "extractor": extractor_name(classifier),
        "num_generated": len(generated),
        "num_reference": len(reference),
    }


def save_classifier(classifier: ImageClassifier, path: str | Path) -> Path:
    """Weights as safetensors (flat names) with the architecture in the metadata; atomic."""
    architecture = {
        "image_shape": list(classifier.image_shape),
        "num_classes": classifier.num_classes,
        "width": classifier.width,
        "feature_dim": classifier.feature_dim,
    }
    return save_module(classifier, path, {"architecture": architecture})


def load_classifier(path: str | Path) -> ImageClassifier:
    """A classifier saved by `save_classifier`."""
    return load_module(
        path, lambda metadata: ImageClassifier(**metadata["architecture"], rngs=nnx.Rngs(0))
    )


__all__ = [
    "ClassifierConfig",
    "ImageClassifier",
    "accuracy",
    "extract_features",
    "extractor_name",
    "image_fid",
    "labels_from_keys",
    "load_classifier",
    "save_classifier",
    "train_classifier",
]
