"""bitflip-dtm: two training settings side by side in one process, then the class balance of the
step from noise and the FID of each, with one feature extractor.

Arm A is the preset with `--set`; arm B the same with `--set-b` on top (say,
`noise_step_backend=jax-sim-tempering`). Both start from the same seed and draw the same batches;
their iterations alternate, so on one GPU they share it evenly and train for the same number of
iterations, planned (the cosine's end) from the time of the first rounds to fill `--minutes`.
Then, per arm: the chi-square of the label-bit class counts of the step from pure noise alone
(beta 1) after each of `--sweeps`, and FID over its floor for each of `--seeds` against held-out
digits 0-999. JSON lines; the last ones give arm B over arm A.

    TSU_BACKEND=jax-sim python benchmarks/dtm_chains_ab.py --preset paper --data path/to/mnist \\
        --minutes 14 --set-b noise_step_backend=jax-sim-tempering --out /tmp/ab

`--quick` trains the `paper` preset at CPU size for a few iterations (exercises every code path;
its figures mean nothing).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import _jsonl
import torch
from dtm_class_balance import chi_square, quick_config, step_from_noise_counts
from dtm_train_fid import _synchronise

import tsu_core
from bitflip_dtm import Trainer, bits_to_images, load_dataset, preset, sample
from bitflip_dtm.checkpoint import save_checkpoint
from bitflip_dtm.cli import _parse_overrides, classifier_for, classifier_path, quantised
from bitflip_dtm.data import spins_to_bits
from bitflip_dtm.evaluate import quality

log = logging.getLogger("dtm_chains_ab")
ARMS = ("A", "B")


def _train_both(trainers: dict[str, Trainer], budget: float, device: str) -> dict[str, float]:
    """Alternate one iteration of each arm until both reach `iterations`; after 3 warm-up rounds
    (compilation) and 10 timed ones, set both arms' `iterations` to the rounds that fill `budget`
    seconds. Returns each arm's seconds of training."""
    spent = dict.fromkeys(trainers, 0.0)
    started = time.perf_counter()
    timed_from = None
    rounds = 0
    while any(t.iteration < t.config.iterations for t in trainers.values()):
        for arm, trainer in trainers.items():
            _synchronise(device)
            begin = time.perf_counter()
            trainer.train_step()
            _synchronise(device)
            spent[arm] += time.perf_counter() - begin
        rounds += 1
        if rounds == 3:
            timed_from = time.perf_counter()
        elif rounds == 13 and timed_from is not None:
            per_round = (time.perf_counter() - timed_from) / 10
            remaining = budget - (time.perf_counter() - started)
            planned = max(rounds + 1, int(rounds + remaining / per_round))
            for trainer in trainers.values():
                trainer.config = trainer.config.replace(iterations=planned)
            log.info("%.3f s per round of both arms: %d iterations each", per_round, planned)
        if rounds % 100 == 0:
            log.info("round %d, %.0f s", rounds, time.perf_counter() - started)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--data", default="../shared/data/mnist")
    parser.add_argument("--minutes", type=float, default=14.0, help="both arms' training time")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a change for both arms")  # fmt: skip
    parser.add_argument("--set-b", action="append", default=[], metavar="FIELD=VALUE",
                        help="a change for arm B alone (at least one)")  # fmt: skip
    parser.add_argument("--samples", type=int, default=1000, help="generated images per FID")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="sampling seeds")
    parser.add_argument("--sweeps", type=int, nargs="+", default=[800, 5000],
                        help="chain lengths of the step from noise's class balance")  # fmt: skip
    parser.add_argument("--out", default="runs/dtm-ab", help="checkpoints and the extractor")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    changes = _parse_overrides(arguments.set)
    changes_b = _parse_overrides(arguments.set_b)
    if arguments.quick:
        changes_b = changes_b or {"chains": "fresh-persistent-noise"}
        # Enough iterations that the plan from the timed rounds sets where the cosine ends.
        base = quick_config(arguments.data, **{"iterations": 40, **changes})
        budget, num_samples, sweeps, device = 8.0, 64, [10, 40], "cpu"
    else:
        base = preset(arguments.preset, data_path=arguments.data, **changes)
        budget, num_samples, sweeps = 60 * arguments.minutes, arguments.samples, arguments.sweeps
        device = arguments.device
    if not changes_b:
        parser.error("--set-b: name at least one change for arm B")
    if not base.label_copies:
        parser.error("the preset has no label bits (label_copies=0): class counts need them")
    configs = {"A": base, "B": base.replace(**changes_b)}
    backend = tsu_core.get_backend(arguments.backend)
    images, labels = load_dataset(base, "train")
    held_out, _ = load_dataset(base, "held-out")
    trainers = {arm: Trainer(configs[arm], images, device=device, backend=backend, labels=labels)
                for arm in ARMS}  # fmt: skip
    device_name = _jsonl.torch_device(device)
    common = {"preset": "paper (quick)" if arguments.quick else arguments.preset,
              "backend": backend.name, "both": changes, "arm B": changes_b}  # fmt: skip

    def emit(what: str, value: float, unit: str, **extra) -> None:
        _jsonl.emit(what, {**common, **extra}, value, unit, device_name)

    spent = _train_both(trainers, budget, device)
    out = Path(arguments.out)
    for arm, trainer in trainers.items():
        save_checkpoint(trainer, out / arm)
        emit("seconds per training iteration", spent[arm] / trainer.iteration, "s", arm=arm,
             iterations=trainer.iteration)  # fmt: skip

    train_images, reference = quantised(images, base), quantised(held_out, base)
    taught = 500 if arguments.quick else len(images)  # the extractor's training images
    classifier = classifier_for(base, classifier_path(out, base), device, train_images[:taught],
                                labels[:taught])  # fmt: skip
    summary = {}
    for arm, trainer in trainers.items():
        key = tsu_core.Key(0)
        counts = step_from_noise_counts(trainer.model, trainer.program, num_samples, sweeps, key)
        chi = {count: chi_square(per_class) for count, per_class in counts.items()}
        for count, per_class in counts.items():
            emit("step from noise alone (beta 1): chi-square of the label-bit class counts",
                 chi[count], "chi2", arm=arm, sweeps=count, counts=per_class)  # fmt: skip
        ratios = []
        for seed in arguments.seeds:
            # As `bitflip-dtm evaluate --seed SEED` draws them.
            result = sample(trainer.model, trainer.program, num_samples, key=seed)
            generated = bits_to_images(spins_to_bits(result.spins), trainer.config).cpu()
            score = quality(generated, reference, train_images, classifier, device)
            ratios.append(score["fid_over_floor"])
            emit("FID over floor", score["fid_over_floor"], "ratio", arm=arm, seed=seed,
                 fid=score["fid"], floor=score["fid_floor"], recognisable=score["recognisable"],
                 class_counts=score["class_counts"], extractor=score["extractor"])  # fmt: skip
        summary[arm] = (statistics.mean(ratios), chi)
    (fid_a, chi_a), (fid_b, chi_b) = summary["A"], summary["B"]
    emit("FID over floor, arm B / arm A (mean over seeds)", fid_b / fid_a, "ratio",
         a=fid_a, b=fid_b)  # fmt: skip
    for count in sweeps:
        emit("step from noise chi-square, arm B / arm A", chi_b[count] / max(chi_a[count], 1e-9),
             "ratio", sweeps=count, a=chi_a[count], b=chi_b[count])  # fmt: skip


if __name__ == "__main__":
    main()
