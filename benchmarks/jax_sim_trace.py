"""Where the time of whole `sample` calls goes, from a profiler trace: host time before the
first device kernel, device-busy time, the call's host duration, and the longest host-side
events before the first kernel (what the host does before the device can start).

Traces 3 calls (after warm-up) of the 784 x 500 bfloat16 RBM (1000 chains) and the DTM-like
64x64 graph (256 chains), 100 sweeps each, with `jax.profiler` (a Perfetto JSON trace, no
TensorBoard needed), then reads the trace. Device events exist on GPUs only; on the CPU the
lines report the host side. JSON lines in microseconds; `--keep DIR` keeps the traces;
`--timeline US` also prints the second call event by event (host events of at least US us).

    python benchmarks/jax_sim_trace.py             # GPU sizes
    python benchmarks/jax_sim_trace.py --quick     # small, CPU
    python benchmarks/jax_sim_trace.py --timeline 4   # and each call's time line
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from _jsonl import emit_jax
from jax_sim_graphs import dtm_like_graph
from profile_events import CALL_MARK, device_events, device_kernels, record

from tsu_core import Parameters, Topology
from tsu_jax_sim import JaxSimBackend


def traced_calls(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The complete events marking the traced calls (`CALL_MARK`), by start time."""
    marks = (e for e in events if e.get("ph") == "X" and e.get("name") == CALL_MARK)
    return sorted(marks, key=lambda event: event["ts"])


def summarise(events: list[dict[str, Any]]) -> dict[str, float]:
    """Medians over the traced calls: host duration, host time to the first device event,
    device-busy time (sum of device event durations up to the next call), and the number of
    device events (kernels and copies) in a call."""
    device = device_events(events)
    calls = traced_calls(events)
    rows: dict[str, list[float]] = {
        "call (host)": [],
        "to first kernel": [],
        "device busy": [],
        "device events": [],
    }
    for index, call in enumerate(calls):
        start = call["ts"]
        end = calls[index + 1]["ts"] if index + 1 < len(calls) else float("inf")
        inside = [event for event in device if start <= event["ts"] < end]
        rows["call (host)"].append(call["dur"])
        if inside:
            rows["to first kernel"].append(inside[0]["ts"] - start)
            rows["device busy"].append(sum(event["dur"] for event in inside))
            rows["device events"].append(len(inside))
    return {name: statistics.median(values) for name, values in rows.items() if values}


def host_spans(events: list[dict[str, Any]], count: int = 12) -> list[tuple[str, float]]:
    """The longest host events that begin in a traced call before its first device event
    (nested events each count: a parent spans its children), median over the calls."""
    device = device_events(events)
    device_ids = {event["pid"] for event in device}
    calls = traced_calls(events)
    per_name: dict[str, list[float]] = {}
    for call in calls:
        start, end = call["ts"], call["ts"] + call["dur"]
        first = min((e["ts"] for e in device if start <= e["ts"] < end), default=end)
        seen: dict[str, float] = {}
        for event in events:
            if (
                event.get("ph") == "X"
                and event["pid"] not in device_ids
                and start <= event["ts"] < first
                and event.get("name") != CALL_MARK
            ):
                seen[event["name"]] = seen.get(event["name"], 0.0) + event["dur"]
        for name, microseconds in seen.items():
            per_name.setdefault(name, []).append(microseconds)
    medians = {name: statistics.median(values) for name, values in per_name.items()}
    return sorted(medians.items(), key=lambda item: -item[1])[:count]


def kernel_counts(events: list[dict[str, Any]], count: int = 25) -> list[tuple[str, float, float]]:
    """The device events of one traced call by name: (name, events per call, microseconds per
    call), most frequent first (the trace holds the traced calls only)."""
    microseconds = device_kernels(events)
    numbers = Counter(event.get("name", "?") for event in device_events(events))
    calls = max(len(traced_calls(events)), 1)
    return [(name, n / calls, microseconds[name] / calls) for name, n in numbers.most_common(count)]


def timeline(events: list[dict[str, Any]], shortest: float) -> list[tuple[str, float, float, str]]:
    """The second traced call as a time line: ("host" or "device", start from the call's start,
    duration, name) of every event at least `shortest` us long (device: every event), by start.
    It shows what the host does before the first kernel and where the device waits."""
    device = device_events(events)
    device_ids = {event["pid"] for event in device}
    calls = traced_calls(events)
    call = calls[min(1, len(calls) - 1)]
    start, end = call["ts"], call["ts"] + call["dur"]
    rows = [
        ("device" if event["pid"] in device_ids else "host", event)
        for event in events
        if event.get("ph") == "X"
        and event.get("name") != CALL_MARK
        and start <= event["ts"] < end
        and (event["pid"] in device_ids or event.get("dur", 0) >= shortest)
    ]
    rows.sort(key=lambda row: row[1]["ts"])
    return [(side, e["ts"] - start, e.get("dur", 0.0), e.get("name", "?")) for side, e in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep the traces in this folder")
    parser.add_argument(
        "--timeline",
        type=float,
        metavar="US",
        help="also print the second call's time line: host events of at least US us, and "
        "every device event",
    )
    arguments = parser.parse_args()
    generator = np.random.default_rng(0)
    visible, hidden, rbm_chains, side, dtm_chains, sweeps = (
        (64, 32, 64, 8, 32, 10) if arguments.quick else (784, 500, 1000, 64, 256, 100)
    )
    cases = []
    for name, topology, chains, backend in (
        (
            f"rbm {visible}x{hidden} bfloat16",
            Topology.bipartite(visible, hidden),
            rbm_chains,
            JaxSimBackend(precision="bfloat16"),
        ),
        (f"dtm-like {side}x{side}", dtm_like_graph(side), dtm_chains, JaxSimBackend()),
    ):
        parameters = Parameters(
            jnp.asarray(generator.normal(0, 0.05, topology.num_edges), jnp.float32),
            jnp.asarray(generator.normal(0, 0.1, topology.num_nodes), jnp.float32),
        )
        cases.append((name, topology, chains, backend, parameters))
    root = arguments.keep or Path(tempfile.mkdtemp(prefix="jax-sim-trace-"))
    for name, topology, chains, backend, parameters in cases:
        program = backend.compile(topology)

        def call(program=program, parameters=parameters, chains=chains) -> Any:
            return program.sample(
                parameters, key=1, num_chains=chains, burn_in=sweeps - 1
            ).final_state

        folder = root / name.replace(" ", "-")
        events = record(call, folder)
        config = {"graph": name, "chains": chains, "sweeps": sweeps, "layout": program.layout_kind}
        for piece, microseconds in summarise(events).items():
            unit = "events" if piece == "device events" else "us"
            emit_jax("sample call trace", {**config, "piece": piece}, microseconds, unit)
        for kernel, number, microseconds in kernel_counts(events):
            emit_jax(
                "device events per call by name",
                {**config, "kernel": kernel[:120], "events": number},
                microseconds,
                "us",
            )
        for span, microseconds in host_spans(events):
            emit_jax(
                "host span before the first kernel", {**config, "span": span}, microseconds, "us"
            )
        if arguments.timeline is not None:
            for side, offset, duration, event in timeline(events, arguments.timeline):
                emit_jax(
                    "time line of a call: event duration",
                    {**config, "side": side, "start_us": round(offset, 1), "event": event[:120]},
                    duration,
                    "us",
                )


if __name__ == "__main__":
    main()
