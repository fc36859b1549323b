"""JAX's persistent compilation cache, on by default for jax-sim programs.

A program's first call compiles its sweeps with XLA, which takes seconds to tens of seconds
for large graphs on a GPU; the persistent cache keeps the compiled executables on disk, so the
same program in a later process loads instead of compiling. `JaxSimBackend` turns the cache on
when it is constructed, unless JAX's cache was configured already (by the user, or by
`JAX_COMPILATION_CACHE_DIR`) or `TSU_JAX_SIM_CACHE` says otherwise:

| `TSU_JAX_SIM_CACHE` | cache |
| --- | --- |
| unset | `$XDG_CACHE_HOME/tsu-jax-sim/xla` (default `~/.cache/tsu-jax-sim/xla`) |
| a directory | that directory |
| `off` (or `0`, `false`, `no`) | not turned on by jax-sim |

JAX writes an entry only for compilations that took at least
`jax_persistent_cache_min_compile_time_secs` (JAX's default: 1 s), so small programs leave
nothing behind. The cache is JAX's, shared with any other JAX code in the process; entries
are keyed by the computation, the JAX version and the device, so a stale entry is never used.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import jax

log = logging.getLogger(__name__)

VARIABLE = "TSU_JAX_SIM_CACHE"
OFF = ("off", "0", "false", "no")


def default_directory() -> Path:
    """Where the cache lives unless `TSU_JAX_SIM_CACHE` names a directory."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tsu-jax-sim" / "xla"


def enable_compilation_cache() -> Path | None:
    """Turn JAX's persistent compilation cache on (see the module docstring); returns the
    directory in use, or None where the cache is off."""
    configured = jax.config.jax_compilation_cache_dir
    if configured:
        return Path(configured)
    setting = os.environ.get(VARIABLE)
    if setting is not None and setting.strip().lower() in OFF:
        return None
    directory = Path(setting).expanduser() if setting else default_directory()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a read-only home: run without the cache rather than fail
        log.warning("no compilation cache (%s: %s); set %s", directory, error, VARIABLE)
        return None
    jax.config.update("jax_compilation_cache_dir", str(directory))
    return directory
