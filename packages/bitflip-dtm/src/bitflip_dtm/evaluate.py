r"""Evaluation: FID with an offline feature extractor, and per-step diagnostics of the sampler.

FID (Fréchet inception distance) compares Gaussians fitted to features of generated and held-out
images: $\|\mu_1 - \mu_2\|^2 + \operatorname{Tr}(\Sigma_1 + \Sigma_2 - 2(\Sigma_1^{1/2}
\Sigma_2 \Sigma_1^{1/2})^{1/2})$. No Inception weights can be downloaded here, so the features
are the penultimate layer of a small classifier trained by this package on the same domain
(`train_classifier`), registered with torch-fidelity as `bitflip-dtm-classifier`. With
torch-fidelity installed (`pip install bitflip-dtm[fid]`) the distance is computed by it; without
it, by `tsu_core.frechet`. A local Inception weights file gives the standard FID.

Beside FID, the *recognisable rate*: the fraction of images the extractor's own classifier
assigns to a class with probability at least `CONFIDENT` (0.9), for generated and held-out
images alike (`quality`). A model whose samples read as digits approaches the held-out rate.

Per-step diagnostics (`step_diagnostics`): the mean energy of the reverse-step samples, the
integrated autocorrelation time of the chains' energy, and the bit error of the model's
$x_{t-1}$ against $x_0$ beside that of the forward posterior $q(x_{t-1} \mid x_t, x_0)$;
`diagnostics_table` and `plot_diagnostics` show them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as functional
from safetensors.torch import load_file, save_file
from torch import nn

import tsu_core
from bitflip_dtm.model import DTM
from bitflip_dtm.sample import chain_start
from tsu_core.arrays import to_torch
from tsu_core.files import atomic_write
from tsu_core.frechet import sample_frechet_distance

log = logging.getLogger(__name__)

EXTRACTOR_NAME = "bitflip-dtm-classifier"
CONFIDENT = 0.9
FEATURE_SIZE = 128
CLASSIFIER_SIZE = 32  # images are resized to this before the classifier


class Classifier(nn.Module):
    """A small CNN digit classifier; its 128-d penultimate layer is the FID feature.

    A colour classifier (3 channels) also reads a fourth, colour-free channel, `contrast`: each
    pixel's distance from the image's border colour. Coloured MNIST draws every digit in a
    random colour on a random background, so on RGB alone the network must learn the shape
    under every pair of colours from a few thousand images; the contrast channel gives it the
    shape directly.
    """

    def __init__(self, channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.channels = channels
        inputs = channels + 1 if channels == 3 else channels
        self.body = nn.Sequential(
            nn.Conv2d(inputs, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
            nn.Flatten(), nn.Linear(512, FEATURE_SIZE), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(FEATURE_SIZE, num_classes)

    @staticmethod
    def prepare(images: torch.Tensor, channels: int) -> torch.Tensor:
        """Float images in [0, 1] at 32x32 with the classifier's channel count, and for colour
        the contrast channel after the three colours."""
        if images.shape[1] != channels:
            images = images.mean(1, keepdim=True).expand(-1, channels, -1, -1)
        images = functional.interpolate(
            images, size=(CLASSIFIER_SIZE, CLASSIFIER_SIZE), mode="bilinear", align_corners=False
        )
        if channels != 3:
            return images
        return torch.cat([images, contrast(images)], dim=1)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(self.prepare(images, self.channels))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def contrast(images: torch.Tensor, frame: int = 2) -> torch.Tensor:
    """Each pixel's Euclidean colour distance from the mean colour of the image's outer `frame`
    pixels, scaled to [0, 1]: (N, 1, H, W) from (N, C, H, W) images in [0, 1]."""
    inner = torch.ones(images.shape[-2:], dtype=torch.bool, device=images.device)
    inner[frame:-frame, frame:-frame] = False
    border = images[..., inner].mean(-1)[..., None, None]  # (N, C, 1, 1)
    distance = (images - border).norm(dim=1, keepdim=True)
    return distance / images.shape[1] ** 0.5


def outliers(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Images that are not digits, as many as given and of their shape: in equal parts,
    uniform random bits of a random density, the images with their pixels shuffled, and the
    images with 15-45% of their pixels inverted (what a diffusion model's failures look like)."""
    count = images.shape[0]
    kind = torch.arange(count) % 3
    density = 0.05 + 0.45 * torch.rand(count, 1, 1, 1, generator=generator)
    noise = (torch.rand(images.shape, generator=generator) < density).to(images.dtype)
    order = torch.argsort(torch.rand(count, images[0, 0].numel(), generator=generator), dim=1)
    flat = images.flatten(2)
    shuffled = torch.gather(flat, 2, order[:, None, :].expand_as(flat)).reshape(images.shape)
    share = 0.15 + 0.3 * torch.rand(count, 1, 1, 1, generator=generator)
    inverted = torch.rand(images.shape[0], 1, *images.shape[2:], generator=generator) < share
    corrupted = torch.where(inverted, 1 - images, images)
    chosen = torch.where((kind == 0)[:, None, None, None], noise, shuffled)
    return torch.where((kind == 2)[:, None, None, None], corrupted, chosen)


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    epochs: int = 3,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device = "cpu",
    outlier_weight: float = 0.5,
) -> tuple[Classifier, float]:
    """Train the feature extractor on labelled images; returns it and its training accuracy.

    With `outlier_weight > 0` every batch also shows as many `outliers`, whose target is the
    uniform distribution over classes (outlier exposure), so the classifier is confident only
    on digits: the recognisable rate then means "reads as a digit" rather than "lies on the
    near side of some decision boundary".
    """
    torch.manual_seed(seed)
    model = Classifier(images.shape[1]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(images.shape[0], generator=generator)
        for start in range(0, images.shape[0], batch_size):
            chosen = order[start : start + batch_size]
            batch = images[chosen]
            loss = functional.cross_entropy(model(batch.to(device)), labels[chosen].to(device))
            if outlier_weight > 0:
                logits = model(outliers(batch, generator).to(device))
                loss = loss - outlier_weight * functional.log_softmax(logits, 1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        predictions = torch.cat(
            [
                model(images[i : i + 512].to(device)).argmax(1).cpu()
                for i in range(0, len(images), 512)
            ]
        )
    return model, float((predictions == labels).float().mean())


def save_classifier(
    model: Classifier, path: str | Path, metadata: dict[str, str] | None = None
) -> None:
    """Write a classifier's weights (and string `metadata`) as safetensors, atomically."""
    state = {name: value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
    stored = {"channels": str(model.channels), **(metadata or {})}
    atomic_write(Path(path), lambda name: save_file(state, name, metadata=stored))


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> Classifier:
    state = load_file(str(path))
    inputs = int(state["body.0.weight"].shape[1])
    if inputs == 3:
        raise ValueError(
            f"{path}: a colour feature extractor from before the contrast channel; "
            "delete it to train a new one"
        )
    model = Classifier(3 if inputs == 4 else inputs).to(device)
    model.load_state_dict({key: value.to(device) for key, value in state.items()})
    return model.eval()


@torch.no_grad()
def extract_features(model: Classifier, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    device = next(model.parameters()).device
    parts = [
        model.features(images[i : i + batch_size].to(device)).double().cpu()
        for i in range(0, images.shape[0], batch_size)
    ]
    return torch.cat(parts).numpy()


def _torch_fidelity() -> Any | None:
    try:
        import torch_fidelity
    except Exception as error:  # a torchvision built for another torch fails at import
        log.info(
            "torch-fidelity unavailable (%s); using tsu_core.frechet.sample_frechet_distance", error
        )
        return None
    return torch_fidelity


class _UInt8Images(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor) -> None:
        rgb = images if images.shape[1] == 3 else images.expand(-1, 3, -1, -1)
        self.images = (rgb.clamp(0, 1) * 255).round().to(torch.uint8)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def _register_extractor(torch_fidelity: Any) -> None:
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    if EXTRACTOR_NAME in FEATURE_EXTRACTORS_REGISTRY:
        return

    class ClassifierExtractor(torch_fidelity.FeatureExtractorBase):
        def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
            super().__init__(name, features_list)
            self.classifier = load_classifier(feature_extractor_weights_path)

        def forward(self, images):
            floats = images.float() / 255
            if self.classifier.channels == 1:
                floats = floats.mean(1, keepdim=True)
            return (self.classifier.features(floats),)

        @staticmethod
        def get_provided_features_list():
            return ("features",)

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return "features"

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return torch.zeros(1, 3, CLASSIFIER_SIZE, CLASSIFIER_SIZE, dtype=torch.uint8)

    torch_fidelity.register_feature_extractor(EXTRACTOR_NAME, ClassifierExtractor)


def fid(
    generated: torch.Tensor,
    reference: torch.Tensor,
    classifier_path: str | Path | None = None,
    inception_weights: str | Path | None = None,
) -> dict[str, Any]:
    """FID between two image sets (N, C, S, S) in [0, 1].

    Arguments:
        classifier_path: safetensors of a `Classifier` (the package's feature extractor).
        inception_weights: a local torch-fidelity Inception file: the standard FID instead
            (needs torch-fidelity).

    Returns:
        {"fid": value, "extractor": what produced the features, "implementation": who computed
        the distance, "num_generated", "num_reference"}.
    """
    torch_fidelity = _torch_fidelity()
    counts = {"num_generated": int(generated.shape[0]), "num_reference": int(reference.shape[0])}
    if inception_weights is not None:
        if torch_fidelity is None:
            raise RuntimeError("inception_weights: the standard FID needs torch-fidelity installed")
        metrics = torch_fidelity.calculate_metrics(
            input1=_UInt8Images(generated), input2=_UInt8Images(reference), fid=True,
            feature_extractor="inception-v3-compat",
            feature_extractor_weights_path=str(inception_weights),
            cuda=torch.cuda.is_available(), verbose=False,
        )  # fmt: skip
        return {"fid": float(metrics["frechet_inception_distance"]),
                "extractor": "inception-v3-compat (local weights)",
                "implementation": "torch-fidelity", **counts}  # fmt: skip
    if classifier_path is None:
        raise ValueError("fid: give classifier_path (train one with `bitflip-dtm evaluate`)")
    extractor = f"{EXTRACTOR_NAME} ({Path(classifier_path).name}, {FEATURE_SIZE}-d)"
    if torch_fidelity is not None:
        _register_extractor(torch_fidelity)
        metrics = torch_fidelity.calculate_metrics(
            input1=_UInt8Images(generated), input2=_UInt8Images(reference), fid=True,
            feature_extractor=EXTRACTOR_NAME,
            feature_extractor_weights_path=str(classifier_path),
            cuda=torch.cuda.is_available(), verbose=False,
        )  # fmt: skip
        value, implementation = float(metrics["frechet_inception_distance"]), "torch-fidelity"
    else:
        classifier = load_classifier(classifier_path)
        quantised_generated = _UInt8Images(generated).images.float() / 255
        quantised_reference = _UInt8Images(reference).images.float() / 255
        value = sample_frechet_distance(
            extract_features(classifier, quantised_generated),
            extract_features(classifier, quantised_reference),
        )
        implementation = "tsu_core.frechet.sample_frechet_distance"
    return {"fid": value, "extractor": extractor, "implementation": implementation, **counts}


@torch.no_grad()
def recognisable_rate(
    classifier: Classifier, images: torch.Tensor, confidence: float = CONFIDENT
) -> float:
    """The fraction of images (N, C, S, S) in [0, 1] that the classifier assigns to one class
    with probability at least `confidence`."""
    device = next(classifier.parameters()).device
    confident = [
        torch.softmax(classifier(images[i : i + 256].to(device)), 1).amax(1) >= confidence
        for i in range(0, images.shape[0], 256)
    ]
    return float(torch.cat(confident).double().mean())


def class_counts(classifier: Classifier, images: torch.Tensor) -> list[int]:
    """How many of the images (N, C, S, S) in [0, 1] the classifier puts in each class: a
    generator that draws the classes out of proportion (or collapses onto a few) shows here
    even where every image is recognisable."""
    device = next(classifier.parameters()).device
    with torch.no_grad():
        chosen = [
            classifier(images[i : i + 256].to(device)).argmax(1).cpu()
            for i in range(0, images.shape[0], 256)
        ]
    return torch.bincount(torch.cat(chosen), minlength=classifier.head.out_features).tolist()


def quality(
    generated: torch.Tensor,
    held_out: torch.Tensor,
    train: torch.Tensor,
    classifier_path: str | Path,
    device: str | torch.device = "cpu",
) -> dict[str, float | int | str]:
    """FID of generated against held-out images beside its floor (the same number of training
    images against the held-out ones), and the recognisable rates of generated and held-out
    images, and how many generated and held-out images the classifier puts in each class. All
    image sets (N, C, S, S) in [0, 1], quantised as the model sees them."""
    count = min(generated.shape[0], held_out.shape[0], train.shape[0])
    reference = held_out[:count]
    score = fid(generated[:count], reference, classifier_path=classifier_path)
    floor = fid(train[:count], reference, classifier_path=classifier_path)
    classifier = load_classifier(classifier_path, device)
    generated_rate = recognisable_rate(classifier, generated[:count])
    held_out_rate = recognisable_rate(classifier, reference)
    return {
        "fid": score["fid"],
        "fid_floor": floor["fid"],
        "fid_over_floor": score["fid"] / floor["fid"] if floor["fid"] else float("nan"),
        "recognisable": generated_rate,
        "recognisable_held_out": held_out_rate,
        "recognisable_ratio": generated_rate / held_out_rate if held_out_rate else float("nan"),
        "class_counts": class_counts(classifier, generated[:count]),
        "class_counts_held_out": class_counts(classifier, reference),
        "num_images": count,
        "extractor": score["extractor"],
        "implementation": score["implementation"],
    }


def integrated_autocorrelation_time(series: np.ndarray, window_factor: float = 5.0) -> float:
    r"""$\tau = 1 + 2\sum_{k \ge 1} \rho_k$ of chains (C, S), averaged over chains, with Sokal's
    automatic window (stop at the first M with $M \ge c\,\tau(M)$)."""
    series = np.asarray(series, dtype=np.float64)
    centred = series - series.mean(axis=1, keepdims=True)
    length = centred.shape[1]
    variance = (centred**2).mean()
    if variance == 0 or length < 2:
        return 1.0
    autocorrelation = np.array(
        [(centred[:, : length - lag] * centred[:, lag:]).mean() / variance for lag in range(length)]
    )
    tau = 1.0
    for window in range(1, length):
        tau = 1 + 2 * autocorrelation[1 : window + 1].sum()
        if window >= window_factor * tau:
            break
    return float(max(tau, 1.0))


@torch.no_grad()
def step_diagnostics(
    model: DTM,
    program: tsu_core.Program,
    spins_0: torch.Tensor,
    key: tsu_core.Key | int,
    steps: list[int] | None = None,
    num_sweeps: int = 50,
) -> list[dict[str, float]]:
    """Per reverse step t: mean energy, autocorrelation time (in sweeps) of the energy, and
    bit error of the model's $x_{t-1}$ against $x_0$ beside the forward posterior's.

    `spins_0` (B, D) are held-out images; $x_t \\sim q(x_t \\mid x_0)$ is clamped and B chains run
    `num_sweeps` sweeps, every state recorded.
    """
    key = tsu_core.as_key(key)
    graph = model.graph
    generator = torch.Generator().manual_seed(key.value & ((1 << 63) - 1))
    results = []
    for t in steps if steps is not None else range(1, model.num_steps + 1):
        spins_t = model.forward_process.noise(spins_0, t, generator)
        start_key, sample_key = key.fold_in(t).split(2)
        samples = program.sample(
            model.parameters_for(t), key=sample_key, num_chains=spins_t.shape[0],
            num_samples=num_sweeps, clamp=tsu_core.Clamp(graph.noisy, spins_t),
            initial_state=chain_start(spins_t, graph.num_latents, start_key),
        )  # fmt: skip
        energies = to_torch(samples.energies, "cpu", torch.float64).numpy()
        states = to_torch(samples.states, spins_0.device, torch.int8)[:, num_sweeps // 2 :]
        visible = states[..., : graph.num_bits].double()
        model_error = ((1 - visible * spins_0[:, None].double()) / 2).mean()
        up = model.forward_process.posterior_up(spins_t, spins_0, t)
        posterior_error = torch.where(spins_0 > 0, 1 - up, up).mean()
        results.append({
            "step": t,
            "energy": float(energies[:, num_sweeps // 2 :].mean()),
            "autocorrelation_time": integrated_autocorrelation_time(energies[:, num_sweeps // 4 :]),
            "bit_error": float(model_error),
            "posterior_bit_error": float(posterior_error),
        })  # fmt: skip
    return results


def diagnostics_table(rows: list[dict[str, float]]) -> str:
    """Per-step diagnostics as a Markdown table."""
    lines = [
        "| step | bit error (model) | bit error (posterior) | energy | autocorrelation time |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['step']} | {row['bit_error']:.4f} | {row['posterior_bit_error']:.4f} | "
            f"{row['energy']:.1f} | {row['autocorrelation_time']:.1f} |"
        )
    return "\n".join(lines)


def plot_diagnostics(rows: list[dict[str, float]], path: str | Path) -> Path:
    """Bit errors and autocorrelation times per step, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [row["step"] for row in rows]
    figure, (errors, times) = plt.subplots(1, 2, figsize=(9, 3.2))
    errors.plot(steps, [row["bit_error"] for row in rows], "o-", label="model")
    errors.plot(steps, [row["posterior_bit_error"] for row in rows], "s--",
                label="forward posterior")  # fmt: skip
    errors.set_xlabel("reverse step t")
    errors.set_ylabel("bit error of $x_{t-1}$ against $x_0$")
    errors.legend()
    times.plot(steps, [row["autocorrelation_time"] for row in rows], "o-")
    for axes in (errors, times):
        axes.set_xticks(steps)
    times.set_xlabel("reverse step t")
    times.set_ylabel("autocorrelation time (sweeps)")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
