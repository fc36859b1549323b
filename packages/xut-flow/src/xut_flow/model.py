"""The XUT velocity model in Flax NNX.

Input latents `x` of shape (B, H, W, C) (NHWC), timesteps `t` in [0, 1] of shape (B,) and pooled
text embeddings of shape (B, text_dim); output the velocity, shaped like `x`.

Pieces: a strided convolution embeds p x p patches; a sinusoidal timestep embedding goes through
an MLP and is added to a projection of the text embedding to give the condition `c`; one shared
AdaLN projection of `c` (plus a learned per-block offset) modulates every block; blocks are
pre-RMSNorm attention with axial 2D RoPE and a SwiGLU MLP. The network is an encoder-decoder:
`depth` layers of `encoder_blocks` blocks, then `depth` layers of `decoder_blocks` blocks whose
first block cross-attends to the matching encoder layer's output (decoder layer i to encoder
layer depth-1-i, U-shaped). TREAD: in training, a random subset of tokens skips the middle
(encoder layers 1.. and decoder layers ..depth-2) and is re-inserted before the last decoder
layer; with `deterministic=True` (inference) every token takes every block.
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx

from xut_flow.config import ModelConfig

_List = getattr(nnx, "List", list)


def timestep_embedding(t: jax.Array, dim: int, max_period: float = 10_000.0) -> jax.Array:
    """Sinusoidal embedding [cos(1000 t f_i), sin(1000 t f_i)], f_i = max_period^(-i / (dim/2)).

    Arguments:
        t: (B,) timesteps in [0, 1].
    Returns:
        (B, dim) float32.
    """
    half = dim // 2
    frequencies = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    angles = 1000.0 * t.astype(jnp.float32)[:, None] * frequencies[None]
    return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


def grid_positions(height: int, width: int, reference: int) -> jax.Array:
    """(height * width, 2) centred (row, column) coordinates, aspect-ratio aware.

    Both axes share one scale, reference / max(height, width), so the longer side always spans
    `reference` units and a 16x32 grid keeps its 1:2 shape instead of being stretched.
    """
    scale = reference / max(height, width)
    rows = (jnp.arange(height, dtype=jnp.float32) - (height - 1) / 2) * scale
    columns = (jnp.arange(width, dtype=jnp.float32) - (width - 1) / 2) * scale
    grid = jnp.stack(jnp.meshgrid(rows, columns, indexing="ij"), axis=-1)
    return grid.reshape(height * width, 2)


def rope_angles(positions: jax.Array, head_dim: int, base: float) -> jax.Array:
    """Axial RoPE angles: the first half of each head rotates by row, the second by column.

    theta = [y f_0 .. y f_{k-1}, x f_0 .. x f_{k-1}] with f_j = base^(-j/k), k = head_dim / 4.

    Arguments:
        positions: (..., N, 2) coordinates.
    Returns:
        (..., N, head_dim / 2) angles.
    """
    quarter = head_dim // 4
    frequencies = base ** (-jnp.arange(quarter, dtype=jnp.float32) / quarter)
    rows = positions[..., 0:1] * frequencies
    columns = positions[..., 1:2] * frequencies
    return jnp.concatenate([rows, columns], axis=-1)


def apply_rope(x: jax.Array, angles: jax.Array) -> jax.Array:
    """Rotate pairs (x_i, x_{i+d/2}) by theta_i: q(m) . k(n) then depends only on m - n.

    Arguments:
        x: (B, N, heads, head_dim).
        angles: (B, N, head_dim / 2) or (N, head_dim / 2).
    """
    half = x.shape[-1] // 2
    if angles.ndim == 2:
        angles = angles[None]
    cos = jnp.cos(angles)[:, :, None, :]
    sin = jnp.sin(angles)[:, :, None, :]
    first, second = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
    rotated = jnp.concatenate([first * cos - second * sin, first * sin + second * cos], axis=-1)
    return rotated.astype(x.dtype)


def _linear(
    features_in: int, features_out: int, config: ModelConfig, rngs: nnx.Rngs, zero: bool = False
) -> nnx.Linear:
    options = {"kernel_init": nnx.initializers.zeros_init()} if zero else {}
    return nnx.Linear(
        features_in,
        features_out,
        use_bias=True,
        dtype=jnp.dtype(config.compute_dtype),
        param_dtype=jnp.float32,
        rngs=rngs,
        **options,
    )


def _norm(features: int, config: ModelConfig, rngs: nnx.Rngs, scale: bool = False) -> nnx.RMSNorm:
    return nnx.RMSNorm(features, use_scale=scale, dtype=jnp.dtype(config.compute_dtype), rngs=rngs)


def _cuda_capability() -> tuple[int, ...]:
    """Compute capability of the default device, () when it is not an NVIDIA GPU."""
    if jax.default_backend() != "gpu":
        return ()
    try:
        return tuple(int(part) for part in jax.devices()[0].compute_capability.split("."))
    except (AttributeError, ValueError):  # a ROCm device has no CUDA compute capability
        return ()


def attention_implementation(config: ModelConfig) -> Literal["xla", "cudnn"]:
    """The attention kernel `config.attention` resolves to on the default device.

    "auto" picks cuDNN flash attention where it runs (an NVIDIA GPU of compute capability 8.0
    or newer, bf16 compute, head_dim a multiple of 8 up to 128), XLA everywhere else.
    """
    if config.attention != "auto":
        return config.attention
    flash = (
        config.compute_dtype == "bfloat16"
        and config.head_dim % 8 == 0
        and config.head_dim <= 128
        and _cuda_capability() >= (8, 0)
    )
    return "cudnn" if flash else "xla"


class Attention(nnx.Module):
    """Multi-head attention with RMS-normalised queries/keys and RoPE; self or cross."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs) -> None:
        width = config.num_heads * config.head_dim
        self.config = config
        self.num_heads, self.head_dim = config.num_heads, config.head_dim
        self.query = _linear(config.model_dim, width, config, rngs)
        self.key = _linear(config.model_dim, width, config, rngs)
        self.value = _linear(config.model_dim, width, config, rngs)
        self.output = _linear(width, config.model_dim, config, rngs)
        self.query_norm = _norm(config.head_dim, config, rngs, scale=True)
        self.key_norm = _norm(config.head_dim, config, rngs, scale=True)

    def __call__(
        self,
        x: jax.Array,
        angles: jax.Array,
        context: jax.Array | None = None,
        context_angles: jax.Array | None = None,
    ) -> jax.Array:
        if context is None:
            context, context_angles = x, angles
        batch, length, _ = x.shape
        shape = (self.num_heads, self.head_dim)
        query = self.query_norm(self.query(x).reshape(batch, length, *shape))
        key = self.key_norm(self.key(context).reshape(batch, context.shape[1], *shape))
        value = self.value(context).reshape(batch, context.shape[1], *shape)
        query, key = apply_rope(query, angles), apply_rope(key, context_angles)
        # Resolved when traced, so "auto" follows the device the step is compiled for.
        attended = jax.nn.dot_product_attention(
            query,
            key,
            value.astype(query.dtype),
            implementation=attention_implementation(self.config),
        )
        return self.output(attended.reshape(batch, length, -1))


class SwiGLU(nnx.Module):
    """MLP(x) = W_out (silu(W_gate x) * (W_up x))."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs) -> None:
        self.gate_up = _linear(config.model_dim, 2 * config.mlp_dim, config, rngs)
        self.output = _linear(config.mlp_dim, config.model_dim, config, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        # Two products with the two halves of the kernel rather than one product split in two:
        # the gradient of a split is a concatenation of two (tokens, mlp_dim) tensors, a copy
        # that the two products avoid.
        layer = self.gate_up
        dtype = layer.dtype or x.dtype
        kernel, bias = layer.kernel[...].astype(dtype), layer.bias[...].astype(dtype)
        half = kernel.shape[1] // 2
        x = x.astype(dtype)
        gate = x @ kernel[:, :half] + bias[:half]
        up = x @ kernel[:, half:] + bias[half:]
        return self.output(jax.nn.silu(gate) * up)


class Block(nnx.Module):
    """One transformer block, modulated by the shared AdaLN.

    With (shift_a, scale_a, gate_a, shift_m, scale_m, gate_m) = shared(c) + offset:
        x += gate_a * Attn(norm(x) (1 + scale_a) + shift_a)
        x += CrossAttn(norm(x), context)                      (first decoder block of a layer)
        x += gate_m * MLP(norm(x) (1 + scale_m) + shift_m)
    """

    def __init__(self, config: ModelConfig, *, cross: bool, rngs: nnx.Rngs) -> None:
        self.attention_norm = _norm(config.model_dim, config, rngs)
        self.attention = Attention(config, rngs=rngs)
        self.cross = cross
        if cross:
            self.cross_norm = _norm(config.model_dim, config, rngs, scale=True)
            self.cross_attention = Attention(config, rngs=rngs)
        self.mlp_norm = _norm(config.model_dim, config, rngs)
        self.mlp = SwiGLU(config, rngs=rngs)
        self.modulation_offset = nnx.Param(jnp.zeros((6, config.model_dim), jnp.float32))

    def __call__(
        self,
        x: jax.Array,
        modulation: jax.Array,
        angles: jax.Array,
        context: jax.Array | None = None,
        context_angles: jax.Array | None = None,
    ) -> jax.Array:
        offset = self.modulation_offset[...].astype(modulation.dtype)
        terms = modulation + offset[None]
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = (
            terms[:, i][:, None] for i in range(6)
        )
        hidden = self.attention_norm(x) * (1 + scale_a) + shift_a
        x = x + gate_a * self.attention(hidden, angles)
        if self.cross:
            x = x + self.cross_attention(self.cross_norm(x), angles, context, context_angles)
        hidden = self.mlp_norm(x) * (1 + scale_m) + shift_m
        return x + gate_m * self.mlp(hidden)


def _route(
    key: jax.Array, tokens: jax.Array, angles: jax.Array, keep: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """A uniformly random subset of `keep` tokens per example (TREAD), with their angles."""
    batch, length = tokens.shape[:2]
    scores = jax.random.uniform(key, (batch, length))
    index = jax.lax.top_k(scores, keep)[1]
    # top_k's indices lie in [0, length): no out-of-bounds masking is needed.
    picked = jnp.take_along_axis(tokens, index[..., None], axis=1, mode="promise_in_bounds")
    picked_angles = jnp.take_along_axis(angles, index[..., None], axis=1, mode="promise_in_bounds")
    return picked, picked_angles, index


def _reinsert(full: jax.Array, routed: jax.Array, index: jax.Array) -> jax.Array:
    """`full` with token index[b, i] of example b replaced by routed[b, i] (undoes `_route`).

    The indices of one example are distinct (top_k), so the scatter declares them unique: its
    gradient is then a plain gather, not JAX's scheme for overlapping updates (a scatter and a
    gather of integer ids over the whole (B, T, D) tensor, then masks).
    """
    rows = jnp.arange(full.shape[0])[:, None]
    return full.at[rows, index].set(routed, unique_indices=True, mode="promise_in_bounds")


class XUT(nnx.Module):
    """Encoder-decoder transformer predicting the rectified-flow velocity."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs) -> None:
        self.config = config
        dim, patch = config.model_dim, config.patch_size
        dtype = jnp.dtype(config.compute_dtype)
        self.patch_embed = nnx.Conv(
            config.latent_channels,
            dim,
            kernel_size=(patch, patch),
            strides=(patch, patch),
            padding="VALID",
            dtype=dtype,
            param_dtype=jnp.float32,
            rngs=rngs,
        )
        self.time_in = _linear(config.timestep_frequencies, dim, config, rngs)
        self.time_out = _linear(dim, dim, config, rngs)
        self.text_in = _linear(config.text_dim, dim, config, rngs)
        self.shared_modulation = _linear(dim, 6 * dim, config, rngs, zero=True)
        self.encoders = _List(
            [
                Block(config, cross=False, rngs=rngs)
                for _ in range(config.depth * config.encoder_blocks)
            ]
        )
        self.decoders = _List(
            [
                Block(config, cross=(index % config.decoder_blocks == 0), rngs=rngs)
                for index in range(config.depth * config.decoder_blocks)
            ]
        )
        self.final_norm = _norm(dim, config, rngs)
        self.final_modulation = _linear(dim, 2 * dim, config, rngs, zero=True)
        self.final = _linear(dim, patch * patch * config.latent_channels, config, rngs, zero=True)

    def routing_active(self, deterministic: bool) -> bool:
        """TREAD runs only in training, with a positive rate and at least two layers."""
        return (not deterministic) and self.config.tread_rate > 0 and self.config.depth >= 2

    def __call__(
        self,
        x: jax.Array,
        t: jax.Array,
        text: jax.Array,
        *,
        deterministic: bool = True,
        key: jax.Array | None = None,
    ) -> jax.Array:
        """Velocity v(x, t, text).

        Arguments:
            x: (B, H, W, C) latents; H and W divisible by the patch size.
            t: (B,) timesteps in [0, 1].
            text: (B, text_dim) pooled text embedding (zeros = unconditional).
            deterministic: True at inference (no token routing).
            key: JAX key for TREAD's token choice; needed when routing is active.
        Returns:
            (B, H, W, C) float32 velocity.
        """
        config = self.config
        batch, height, width, channels = x.shape
        patch = config.patch_size
        if height % patch or width % patch or channels != config.latent_channels:
            raise ValueError(
                f"x: expected (B, H, W, {config.latent_channels}) with H, W divisible by "
                f"{patch}, got {x.shape}"
            )
        dtype = jnp.dtype(config.compute_dtype)
        grid_h, grid_w = height // patch, width // patch
        tokens = self.patch_embed(x.astype(dtype)).reshape(batch, grid_h * grid_w, -1)
        angles = rope_angles(
            grid_positions(grid_h, grid_w, config.rope_reference), config.head_dim, config.rope_base
        )
        angles = jnp.broadcast_to(angles[None], (batch, *angles.shape))

        time = timestep_embedding(t, config.timestep_frequencies).astype(dtype)
        condition = self.time_out(jax.nn.silu(self.time_in(time))) + self.text_in(
            text.astype(dtype)
        )
        condition = jax.nn.silu(condition)
        modulation = self.shared_modulation(condition).reshape(batch, 6, -1)

        route = self.routing_active(deterministic)
        if route and key is None:
            raise ValueError("key: TREAD routing (deterministic=False) needs a JAX key")
        keep = grid_h * grid_w - int(grid_h * grid_w * config.tread_rate)
        full_tokens = full_angles = index = None

        encoder_outputs = []
        for layer in range(config.depth):
            if route and layer == 1:
                full_tokens, full_angles = tokens, angles
                tokens, angles, index = _route(key, tokens, angles, keep)
            for block in range(config.encoder_blocks):
                tokens = self.encoders[layer * config.encoder_blocks + block](
                    tokens, modulation, angles
                )
            encoder_outputs.append((tokens, angles))

        for layer in range(config.depth):
            if route and layer == config.depth - 1:
                tokens, angles = _reinsert(full_tokens, tokens, index), full_angles
            context, context_angles = encoder_outputs[config.depth - 1 - layer]
            for block in range(config.decoder_blocks):
                module = self.decoders[layer * config.decoder_blocks + block]
                if block == 0:
                    tokens = module(tokens, modulation, angles, context, context_angles)
                else:
                    tokens = module(tokens, modulation, angles)

        shift, scale = jnp.split(self.final_modulation(condition)[:, None], 2, axis=-1)
        out = self.final(self.final_norm(tokens) * (1 + scale) + shift)
        out = out.reshape(batch, grid_h, grid_w, patch, patch, channels)
        out = out.transpose(0, 1, 3, 2, 4, 5).reshape(batch, height, width, channels)
        return out.astype(jnp.float32)


def parameter_count(config: ModelConfig) -> int:
    """Number of parameters, from shapes only (nothing is allocated)."""
    abstract = nnx.eval_shape(lambda: XUT(config, rngs=nnx.Rngs(0)))
    leaves = jax.tree.leaves(nnx.state(abstract, nnx.Param))
    return int(sum(math.prod(leaf.shape) for leaf in leaves))


def forward_flops(config: ModelConfig, height: int, width: int, *, routed: bool) -> float:
    """Matmul FLOPs of one forward pass for one example (2 per multiply-add), from shapes.

    Per block on T tokens: projections 2 T (4 D A), scores and weighted sum 4 T T_ctx A,
    SwiGLU 2 T (3 D M); cross attention adds 2 T (2 D A) + 2 T_ctx (2 D A) + 4 T T_ctx A.
    With `routed`, the middle layers see only the TREAD-kept tokens.
    """
    dim, width_attn, mlp = config.model_dim, config.num_heads * config.head_dim, config.mlp_dim
    tokens = (height // config.patch_size) * (width // config.patch_size)
    kept = tokens - int(tokens * config.tread_rate) if routed and config.depth >= 2 else tokens

    def block(length: float, context: float | None) -> float:
        flops = 2 * length * 4 * dim * width_attn + 4 * length * length * width_attn
        flops += 2 * length * 3 * dim * mlp
        if context is not None:
            flops += 2 * length * 2 * dim * width_attn + 2 * context * 2 * dim * width_attn
            flops += 4 * length * context * width_attn
        return flops

    total = 2 * tokens * dim * config.patch_size**2 * config.latent_channels  # patch embedding
    encoder_lengths = [tokens] + [kept] * (config.depth - 1)
    for length in encoder_lengths:
        total += config.encoder_blocks * block(length, None)
    for layer in range(config.depth):
        length = tokens if layer == config.depth - 1 else kept
        context = encoder_lengths[config.depth - 1 - layer]
        total += block(length, context) + (config.decoder_blocks - 1) * block(length, None)
    total += 2 * tokens * dim * config.patch_size**2 * config.latent_channels  # output
    return float(total)
