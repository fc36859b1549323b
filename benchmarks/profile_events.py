"""Record a `jax.profiler` trace of a few calls and read its events (Perfetto JSON, no
TensorBoard needed). Shared by the benchmarks that break a call's time down.

`device_kernels` sums the device events by kernel name; `kernel_classes` folds them into
matrix products, attention, XLA fusions, copies and the rest.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import jax

CALL_MARK = "traced call"
CLASSES = (  # (class, substrings of the kernel name), first match wins
    ("attention (cuDNN / flash)", ("cudnn", "flash", "fmha", "sdpa")),
    ("matrix products", ("gemm", "cutlass", "cublas", "xmma", "nvjet", "wgmma", "triton_dot")),
    ("copies", ("memcpy", "memset", "copy")),
    ("XLA fusions (elementwise, reductions)", ("fusion", "loop_", "input_", "reduce")),
)


def record(call: Any, directory: Path, count: int = 3, warmup: int = 3) -> list[dict[str, Any]]:
    """Run `call` `count` times under the profiler (each marked `CALL_MARK`); the events."""
    for _ in range(warmup):
        jax.block_until_ready(call())
    jax.profiler.start_trace(str(directory), create_perfetto_trace=True)
    for _ in range(count):
        with jax.profiler.TraceAnnotation(CALL_MARK):
            jax.block_until_ready(call())
    jax.profiler.stop_trace()
    (path,) = Path(directory).glob("**/perfetto_trace.json.gz")
    with gzip.open(path) as handle:
        return json.load(handle)["traceEvents"]


def device_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The complete events of device processes ("/device:" in the process name), by time."""
    names = {
        event["pid"]: event["args"]["name"]
        for event in events
        if event.get("ph") == "M" and event.get("name") == "process_name"
    }
    return sorted(
        (
            event
            for event in events
            if event.get("ph") == "X" and "/device:" in names.get(event["pid"], "")
        ),
        key=lambda event: event["ts"],
    )


def device_kernels(events: list[dict[str, Any]]) -> Counter:
    """Microseconds per device kernel name, summed over the trace."""
    totals: Counter = Counter()
    for event in device_events(events):
        totals[event.get("name", "?")] += event.get("dur", 0)
    return totals


def kernel_classes(totals: Counter) -> Counter:
    """`device_kernels` folded into `CLASSES` (and "other")."""
    classes: Counter = Counter()
    for name, microseconds in totals.items():
        lowered = name.lower()
        label = next(
            (label for label, keys in CLASSES if any(key in lowered for key in keys)), "other"
        )
        classes[label] += microseconds
    return classes
