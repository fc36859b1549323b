"""Training loop: rectified flow with AdamW, data parallel over a device mesh, Orbax checkpoints.

Read top to bottom: optimiser -> mesh and shardings -> jitted step -> checkpoints -> loop.

- AdamW (weight decay on matrices only), global-norm clipping, linear warmup then cosine decay,
  muP learning rate lr = base_learning_rate / model_dim.
- Master weights are float32; the model computes in `ModelConfig.compute_dtype` (bf16).
- Batch sharded over the mesh axis "data"; parameters replicated or FSDP-sharded.
- Checkpoints (Orbax, `checkpoints.py`): every `checkpoint_every` steps (keep the last few)
  under `steps/`, at the end of every `epoch_checkpoint_every`-th epoch (keep all) under
  `epochs/`, each verified by a SHA-256 manifest; a new run resumes from the newest intact one.
- The first SIGINT/SIGTERM saves a checkpoint at the end of the step and stops; a second one
  ends the process at once (`tsu_core.interrupt.StopRequest`).
- `run.json` records the preset and configs (`run_record.py`); resuming with another model is
  an error.
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm import tqdm

from tsu_core.interrupt import StopRequest
from xut_flow.checkpoints import Checkpoints
from xut_flow.config import ModelConfig, TrainConfig
from xut_flow.data import ShardDataset
from xut_flow.flow import draw_noise, flow_loss
from xut_flow.model import XUT
from xut_flow.run_record import RunConfigError, model_differences, read_run, write_run

logger = logging.getLogger(__name__)

CSV_COLUMNS = ["timestamp", "epoch", "step", "global_step", "loss", "learning_rate"]


def learning_rate_schedule(config: TrainConfig, model_config: ModelConfig) -> optax.Schedule:
    """Linear warmup to base_learning_rate / model_dim, then cosine decay to zero."""
    peak = config.base_learning_rate / model_config.model_dim
    warmup = min(config.warmup_steps, max(config.total_steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        0.0, peak, warmup, decay_steps=max(config.total_steps, warmup + 1), end_value=0.0
    )


def make_optimizer(config: TrainConfig, model_config: ModelConfig) -> optax.GradientTransformation:
    """clip_by_global_norm, then AdamW with decay on weight matrices (ndim >= 2) only."""
    return optax.chain(
        optax.clip_by_global_norm(config.gradient_clip),
        optax.adamw(
            learning_rate_schedule(config, model_config),
            weight_decay=config.weight_decay,
            mask=lambda params: jax.tree.map(lambda leaf: leaf.ndim >= 2, params),
        ),
    )


def training_memory(
    model_config: ModelConfig,
    config: TrainConfig,
    latent_shape: tuple[int, int, int],
    num_devices: int = 1,
) -> int:
    r"""Bytes one device holds at the peak of a training step, estimated from the shapes alone.

    $$ 20 P / s + \sum_\text{blocks} b\, n_k \big( a (12 D + 9 A + 6 M) + 12 h\, n_c \big) $$

    P parameters in float32 with their gradients, AdamW's two moments and the update (20 bytes
    each; split over the s devices under FSDP, else s = 1); for every block, the activations
    the backward pass keeps for its b examples (this device's share of the batch) of $n_k$
    tokens: widths D of the residual stream, norms, modulated inputs and projections' outputs,
    attention widths A (queries, keys, values, their rotations, the attention output) and
    SwiGLU widths M, at a = 2 bytes in bfloat16 or 4 in float32; and, where attention runs in
    XLA, the h heads' scores and probabilities over the $n_c$ keys in float32 (cuDNN's flash
    attention stores none). Counting the tensors gives 8 D + 6 A + 4 M and 8 h; the
    coefficients are half as large again, what a measured CPU step needed per example. TREAD's routed layers count only
    their kept tokens. The data set's shards and JAX's own memory (compiled programs, thread
    pools) are not in it.

    Arguments:
        model_config: the model.
        config: the batch size and parameter layout.
        latent_shape: one example's latents, (C, H, W).
        num_devices: devices on the data axis.

    Returns:
        The estimate in bytes; `tests/test_train.py` holds it against a measured step.
    """
    from xut_flow.model import attention_implementation, parameter_count

    model = model_config
    shards = num_devices if config.parameter_sharding == "fsdp" else 1
    state = 20 * parameter_count(model) // shards
    _, height, width = latent_shape
    tokens = (height // model.patch_size) * (width // model.patch_size)
    routed = model.tread_rate > 0 and model.depth >= 2
    kept = tokens - int(tokens * model.tread_rate) if routed else tokens
    encoder = [tokens] + [kept] * (model.depth - 1)
    decoder = [kept] * (model.depth - 1) + [tokens]
    scores = 12 * model.num_heads if attention_implementation(model) == "xla" else 0
    width_bytes = 2 if model.compute_dtype == "bfloat16" else 4
    attention_width = model.num_heads * model.head_dim
    per_token = width_bytes * (12 * model.model_dim + 9 * attention_width + 6 * model.mlp_dim)
    activations = 0
    for length in encoder:
        activations += model.encoder_blocks * length * (per_token + scores * length)
    for layer, length in enumerate(decoder):
        context = encoder[model.depth - 1 - layer]
        activations += model.decoder_blocks * length * (per_token + scores * length)
        activations += length * (per_token + scores * context)  # the cross-attention
    examples = max(1, config.batch_size // num_devices)
    return state + examples * activations


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1D mesh with axis "data" over the first `num_devices` devices (all by default)."""
    devices = jax.devices()
    count = len(devices) if num_devices is None else num_devices
    if not 1 <= count <= len(devices):
        raise ValueError(f"num_devices: expected 1..{len(devices)}, got {num_devices}")
    return Mesh(np.array(devices[:count]), ("data",))


def parameter_shardings(params: Any, mesh: Mesh, mode: str) -> Any:
    """Replicated, or FSDP: each array split over "data" along its first divisible axis."""
    size = mesh.shape["data"]

    def choose(leaf: Any) -> NamedSharding:
        if mode == "fsdp" and size > 1:
            for axis, length in enumerate(leaf.shape):
                if length % size == 0 and length >= size:
                    spec = [None] * leaf.ndim
                    spec[axis] = "data"
                    return NamedSharding(mesh, PartitionSpec(*spec))
        elif mode not in ("replicated", "fsdp"):
            raise ValueError(f"parameter_sharding: expected 'replicated' or 'fsdp', got {mode!r}")
        return NamedSharding(mesh, PartitionSpec())

    return jax.tree.map(choose, params)


def make_train_step(
    graphdef: Any,
    optimizer: optax.GradientTransformation,
    config: TrainConfig,
    schedule: optax.Schedule,
):
    """The pure update (params, opt_state, latents, text, noise, normal, step) ->
    (params, opt_state, loss, learning rate used).

    With noise_source="jax", `noise` and `normal` are None and drawn inside from (seed, step).
    """

    def step(params, opt_state, latents, text, noise, normal, global_step):
        if noise is None:
            key = jax.random.fold_in(jax.random.key(config.seed), global_step)
            noise_key, time_key = jax.random.split(key)
            noise = jax.random.normal(noise_key, latents.shape, jnp.float32)
            normal = jax.random.normal(time_key, latents.shape[:1], jnp.float32)
        key = jax.random.fold_in(jax.random.key(config.seed + 1), global_step)

        def loss_function(trainable):
            model = nnx.merge(graphdef, trainable)
            return flow_loss(
                model,
                latents,
                text,
                noise,
                normal,
                key,
                text_dropout=config.text_dropout,
                timestep_mean=config.timestep_mean,
                timestep_std=config.timestep_std,
                deterministic=False,
            )

        loss, grads = jax.value_and_grad(loss_function)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, loss, schedule(global_step)

    return step


@dataclass
class TrainResult:
    """What a run returns: the last global step, per-step losses it logged, the model, and
    whether a signal stopped it (its name) and where the last checkpoint is."""

    global_step: int
    losses: list[tuple[int, float]] = field(default_factory=list)
    stopped_by_signal: bool = False
    signal_name: str | None = None
    checkpoint: Path | None = None
    graphdef: Any = None
    params: Any = None
    opt_state: Any = None

    def model(self) -> XUT:
        return nnx.merge(self.graphdef, self.params)


def _put(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from this process's slice of the batch (works for one or many hosts)."""
    count = jax.process_count()
    if count > 1:
        local = array.shape[0] // count
        array = array[jax.process_index() * local : (jax.process_index() + 1) * local]
    return jax.make_array_from_process_local_data(sharding, np.asarray(array))


def _open_log(path: Path, resume_step: int) -> None:
    """Start the CSV, or on resume drop rows logged after the checkpoint being resumed."""
    rows = []
    if path.exists() and resume_step > 0:
        with open(path, newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if int(row["global_step"]) <= resume_step]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def evaluate_loss(
    model: XUT,
    dataset: ShardDataset,
    *,
    batch_size: int = 250,
    seed: int = 1234,
    noise_source: str = "tsu",
) -> float:
    """Mean flow-matching loss on a data set at inference (no TREAD, text kept), fixed noise.

    Each batch uses noise and timesteps drawn from (seed, batch index), so two models are
    compared on exactly the same (x_0, t) pairs.
    """
    graphdef, state = nnx.split(model)

    @jax.jit
    def batch_loss(state, latents, text, noise, normal):
        return flow_loss(
            nnx.merge(graphdef, state),
            latents,
            text,
            noise,
            normal,
            jax.random.key(0),
            text_dropout=0.0,
            deterministic=True,
        )

    total, count = 0.0, 0
    for index in range(dataset.steps_per_epoch(batch_size)):
        _, _, latents, text = next(dataset.batches(batch_size, index))
        noise, normal = draw_noise(noise_source, seed, index, latents.shape)
        total += float(batch_loss(state, latents, text, noise, normal)) * len(latents)
        count += len(latents)
    return total / count


def plot_losses(log_path: str | Path, image_path: str | Path) -> None:
    """Loss against global step from the CSV log, saved as an image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(log_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot([int(r["global_step"]) for r in rows], [float(r["loss"]) for r in rows])
    axis.set_xlabel("global step")
    axis.set_ylabel("flow-matching loss (MSE)")
    axis.set_yscale("log")
    figure.tight_layout()
    figure.savefig(image_path, dpi=120)
    plt.close(figure)


def check_run(output_dir: Path, model_config: ModelConfig, preset_name: str | None) -> None:
    """Raise `RunConfigError` when `output_dir` holds a run of another model."""
    record = read_run(output_dir)
    if record is None:
        return
    differences = model_differences(record.model, model_config)
    if not differences:
        return
    if preset_name is not None and record.preset not in (None, preset_name):
        what = f"preset {record.preset!r}, not {preset_name!r}"
    else:
        what = "another model"
    raise RunConfigError(
        f"{output_dir} holds a run of {what} ({', '.join(differences)}): resume it with its "
        "own preset and flags, or train into another directory"
    )


def train(
    model_config: ModelConfig,
    config: TrainConfig,
    dataset: ShardDataset,
    output_dir: str | Path,
    *,
    progress: bool = True,
    preset_name: str | None = None,
) -> TrainResult:
    """Train (or resume) until `max_steps` (default `total_steps`), the time budget, or the
    first SIGINT/SIGTERM, which saves a checkpoint at the end of the step and returns (a
    second signal ends the process at once).

    A new run records `preset_name` and both configs in `output_dir/run.json`; a run that has
    one resumes only with the same model.

    Raises:
        RunConfigError: `model_config` differs from the model of the run in `output_dir`.
        CheckpointError: the run has checkpoints but none of them is intact.
    """
    if config.distributed:
        jax.distributed.initialize()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    check_run(output_dir, model_config, preset_name)
    mesh = make_mesh(config.num_devices)
    if config.batch_size % mesh.shape["data"]:
        raise ValueError(
            f"batch_size {config.batch_size} must divide by the {mesh.shape['data']} devices"
        )
    batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
    replicated = NamedSharding(mesh, PartitionSpec())

    graphdef, params = nnx.split(XUT(model_config, rngs=nnx.Rngs(config.seed)))
    params = jax.device_put(params, parameter_shardings(params, mesh, config.parameter_sharding))
    optimizer = make_optimizer(config, model_config)
    schedule = learning_rate_schedule(config, model_config)
    opt_state = optimizer.init(params)
    # Scalars the optimiser creates (step counts) live on one device: replicate them on the
    # mesh, so the first step's input shardings equal its outputs' (no second compile).
    opt_state = jax.tree.map(
        lambda leaf: (
            leaf if isinstance(leaf.sharding, NamedSharding) else jax.device_put(leaf, replicated)
        ),
        opt_state,
    )
    param_shardings = jax.tree.map(lambda leaf: leaf.sharding, params)
    opt_shardings = jax.tree.map(lambda leaf: leaf.sharding, opt_state)

    checkpoints = Checkpoints(output_dir / "checkpoints", config.keep_step_checkpoints)
    restored = checkpoints.restore_latest((params, opt_state))
    start = 0
    if restored is not None:
        start, (params, opt_state) = restored
        logger.info("resumed from global step %d", start)
    if jax.process_index() == 0 and read_run(output_dir) is None:
        write_run(output_dir, model_config, config, preset_name)
    log_path = output_dir / "log.csv"
    if jax.process_index() == 0:
        _open_log(log_path, start)

    step_function = jax.jit(
        make_train_step(graphdef, optimizer, config, schedule),
        out_shardings=(param_shardings, opt_shardings, replicated, replicated),
        donate_argnums=(0, 1),
    )
    per_epoch = dataset.steps_per_epoch(config.batch_size)
    stop_at = config.total_steps if config.max_steps is None else config.max_steps
    result = TrainResult(global_step=start, graphdef=graphdef)
    batches = dataset.batches(config.batch_size, start)
    bar = tqdm(total=stop_at, initial=start, disable=not progress, desc="train")
    with StopRequest("xut-flow") as stop, open(log_path, "a", newline="") as log_file:
        writer = csv.DictWriter(log_file, CSV_COLUMNS)
        global_step = start
        saved: Path | None = None
        began = None  # the time budget starts after the first (compiling) step
        while global_step < stop_at and not stop.requested:
            budget = config.max_seconds
            if began is not None and budget is not None and time.monotonic() - began > budget:
                break
            step_index, epoch, latents, text = next(batches)
            noise = normal = None
            if config.noise_source == "tsu":
                noise, normal = draw_noise("tsu", config.seed, step_index, latents.shape)
                noise = _put(np.asarray(noise), batch_sharding)
                normal = _put(np.asarray(normal), batch_sharding)
            elif config.noise_source != "jax":
                raise ValueError(
                    f"noise_source: expected 'tsu' or 'jax', got {config.noise_source}"
                )
            params, opt_state, loss, learning_rate = step_function(
                params,
                opt_state,
                _put(latents, batch_sharding),
                _put(text, batch_sharding),
                noise,
                normal,
                jnp.int32(step_index),
            )
            global_step = step_index + 1
            if began is None:
                loss.block_until_ready()
                began = time.monotonic()
            bar.update(1)
            if global_step % config.log_every == 0 or global_step == stop_at:
                value = float(loss)
                result.losses.append((global_step, value))
                bar.set_postfix(loss=f"{value:.4f}")
                if jax.process_index() == 0:
                    writer.writerow(
                        {
                            "timestamp": f"{time.time():.3f}",
                            "epoch": epoch,
                            "step": step_index % per_epoch,
                            "global_step": global_step,
                            "loss": f"{value:.8g}",
                            "learning_rate": f"{float(learning_rate):.6g}",
                        }
                    )
                    log_file.flush()
            if global_step % config.checkpoint_every == 0:
                saved = checkpoints.save(global_step, (params, opt_state)) or saved
            every = config.epoch_checkpoint_every * per_epoch
            if every and global_step % every == 0:
                saved = checkpoints.save(global_step, (params, opt_state), epoch_end=True) or saved
        if global_step > start and checkpoints.latest() != global_step:
            saved = checkpoints.save(global_step, (params, opt_state)) or saved
        result.stopped_by_signal = stop.requested
        result.signal_name = stop.signal_name
        result.checkpoint = saved
    bar.close()
    checkpoints.close()
    if jax.process_index() == 0 and result.losses:
        plot_losses(log_path, output_dir / "loss.png")
    result.global_step, result.params, result.opt_state = global_step, params, opt_state
    return result
