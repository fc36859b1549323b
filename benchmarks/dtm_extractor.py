"""bitflip-dtm: how well the FID feature extractor of a preset's data separates the digits.

Trains the extractor exactly as `bitflip-dtm evaluate` does (`evaluate.train_classifier`, the
package's epochs, outlier exposure) on the preset's quantised training images, then reports its
accuracy on the held-out images and their recognisable rate (confidence >= 0.9). An FID is only
as good as the features under it: an extractor that confuses the digits cannot tell a model that
draws them well from one that does not.

    python benchmarks/dtm_extractor.py --preset rgb64 --data path/to/mnist
    python benchmarks/dtm_extractor.py --quick        # the bundled 8x8 digits, CPU, seconds
"""

from __future__ import annotations

import argparse
import time

import _jsonl
import torch

from bitflip_dtm import load_dataset, preset
from bitflip_dtm.cli import quantised
from bitflip_dtm.evaluate import recognisable_rate, train_classifier
from bitflip_dtm.extractor import EPOCHS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="rgb64", help="the preset whose data to use")
    parser.add_argument("--data", help="MNIST folder (presets on MNIST or coloured MNIST)")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="the bundled 8x8 digits, 3 epochs")
    args = parser.parse_args()
    if args.quick:
        config = preset("tiny", dataset="digits", image_size=8, block_size=4)
        args.epochs = 3
    else:
        config = preset(args.preset, **({"data_path": args.data} if args.data else {}))
    train, train_labels = load_dataset(config, "train")
    held_out, held_out_labels = load_dataset(config, "held-out")
    train, held_out = quantised(train, config), quantised(held_out, config)
    started = time.perf_counter()
    classifier, train_accuracy = train_classifier(
        train, train_labels, epochs=args.epochs, device=args.device
    )
    seconds = time.perf_counter() - started
    classifier.eval()
    with torch.no_grad():
        predicted = torch.cat(
            [
                classifier(held_out[i : i + 512].to(args.device)).argmax(1).cpu()
                for i in range(0, len(held_out), 512)
            ]
        )
    common = {
        "preset": "tiny (digits)" if args.quick else args.preset,
        "dataset": config.dataset,
        "image_size": config.image_size,
        "channels": config.channels,
        "epochs": args.epochs,
        "train_images": len(train),
        "held_out_images": len(held_out),
        "train_accuracy": train_accuracy,
        "train_seconds": seconds,
    }
    device = _jsonl.torch_device(args.device)
    accuracy = float((predicted == held_out_labels).float().mean())
    _jsonl.emit(
        "feature extractor accuracy on held-out images", common, accuracy, "fraction", device
    )
    rate = recognisable_rate(classifier, held_out)
    _jsonl.emit("recognisable rate of held-out images (confidence >= 0.9)", common, rate, "fraction",
                device)  # fmt: skip


if __name__ == "__main__":
    main()
