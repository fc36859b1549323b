"""The model packages' command-line convention (docs/cli.md): a check that reads a parser, the
help formatter that shows defaults, old spellings kept working behind a warning, `--backend`
for libraries that ask `get_backend()` without a name, and the checks a command makes before its
long work (`require_module`, `require_writable`, `require_memory`), which raise `Unmet` with one
line to print.

`deviations(parser)` walks an `argparse` parser and its subcommands without parsing anything and
lists where it departs from the convention; each model package's tests assert that the list is
empty. Walking subcommands needs argparse's `_actions` and `_SubParsersAction`, which have been
stable since Python 3.2: the standard library has no public way to list a parser's options.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tsu_core.devices import device_name
from tsu_core.registry import ENVIRONMENT_VARIABLE, get_backend

# The names the convention fixes (docs/cli.md says what each means), each with the other
# spellings of the same thing that the check refuses.
NAMES: dict[str, tuple[str, ...]] = {
    "--device": ("--gpu", "--devices"),
    "--seed": ("--random-seed", "--rng-seed"),
    "--backend": ("--tsu-backend",),
    "--data": ("--data-dir", "--data-path", "--dataset-path", "--input", "--shard", "--shards"),
    "--out": ("--output", "--output-dir", "--out-dir", "--outdir", "--run-dir", "--save-dir", "-o"),
    "--checkpoint": (
        "--ckpt", "--checkpoint-path", "--checkpoint-dir", "--run", "--load", "--resume-from"
    ),
    "--max-minutes": (
        "--max-seconds", "--max-hours", "--max-time", "--time-limit", "--time-budget",
        "--budget", "--minutes", "--seconds",
    ),
    "--num-samples": ("--num", "--count", "--samples", "--n-samples"),
}  # fmt: skip
REPLACED = {old: name for name, others in NAMES.items() for old in others}
# Libraries whose INFO logs are noise to a user: Orbax writes a dozen lines per save through
# absl, and JAX lists each platform it could not start (TPU, CUDA) on every run.
CHATTY_LOGGERS = ("absl", "orbax", "jax")
# The only options a command with subcommands takes before the subcommand.
BEFORE_SUBCOMMAND = ("-h", "--help", "--version")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """`--help` with each option's default, and descriptions kept as written.

    No default is appended where the help already says it, where there is none to show (a
    required option, a flag, a repeatable option that starts empty, a default of None) or where
    the help is hidden; such an option's help says in words what happens when it is not given.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            "default" in text
            or action.required
            or action.nargs == 0
            or action.default is None
            or action.default is argparse.SUPPRESS
            or action.default == []
        ):
            return action.help
        return super()._get_help_string(action)


class DeprecatedSpelling(argparse.Action):
    """An old spelling of an option, hidden from `--help`: it stores into the option that
    replaces it (through `convert` where the unit changed) and prints one warning line.

    Arguments:
        replacement: what to type instead, for the warning (`--out`, `--max-minutes`).
        store_as: the destination to store into (default: `dest`; a positional argument's
            `dest` is its name, so an old positional names the new option's here).
        convert: maps the old value to the new option's (seconds to minutes, say).
        spelling: the old form as the warning names it (default: the option string typed, or
            "NAME as a positional argument").

    The option that replaces an old spelling cannot be argparse's `required=True` (argparse
    would refuse a command line that gives the old spelling instead): check it after parsing.
    """

    def __init__(
        self,
        option_strings: list[str],
        dest: str,
        *,
        replacement: str,
        store_as: str | None = None,
        convert: Callable[[Any], Any] | None = None,
        spelling: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs["help"] = argparse.SUPPRESS
        kwargs.setdefault("default", argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kwargs)
        self.replacement = replacement
        self.store_as = store_as or dest
        self.convert = convert
        self.spelling = spelling

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        spelling = self.spelling or option_string or f"{self.dest.upper()} as a positional argument"
        value = self.convert(values) if self.convert else values
        converted = (
            f" ({option_string} {_text(values)} is {self.replacement} {_text(value)})"
            if self.convert and option_string
            else ""
        )
        print(
            f"{parser.prog}: warning: {spelling} is deprecated; use {self.replacement}{converted}",
            file=sys.stderr,
        )
        setattr(namespace, self.store_as, value)


def use_backend(name: str | None) -> None:
    """Make `name` the backend that `get_backend()` returns in this process (None: leave the
    choice to TSU_BACKEND, else the best installed): what `--backend` does in a command whose
    library asks `get_backend()` without a name.

    Raises:
        BackendNotFound: no installed backend has that name (the message lists those that are).
    """
    if name:
        get_backend(name)
        os.environ[ENVIRONMENT_VARIABLE] = name


class Unmet(Exception):
    """A precondition of a command that the user can fix, found before its long work; the
    message is one line that says what to do. Commands print it as `PROGRAM: error: MESSAGE`
    and exit with status 2."""


def require_module(
    module: str, *, package: str, extra: str, needed_by: str, instead: str | None = None
) -> None:
    """Import `module`, the part of `package`'s optional `extra` that `needed_by` uses.

    Arguments:
        module: the module to import (`sklearn`, `sentence_transformers`).
        package: the distribution whose extra provides it (`xut-flow`).
        extra: the extra's name (`text`).
        needed_by: what needs it, as the user asked for it (`xut-flow prepare --data digits`).
        instead: what the user can do without the extra, if anything (`pass --text-encoder
            random`).

    Raises:
        Unmet: the module cannot be imported; the message gives the pip command.
    """
    try:
        importlib.import_module(module)
    except ImportError as error:
        other = f"; or {instead}" if instead else ""
        raise Unmet(
            f"{needed_by} needs the [{extra}] extra: pip install '{package}[{extra}]'{other} "
            f"({error})"
        ) from None


def require_writable(path: str | Path, option: str, *, directory: bool = True) -> Path:
    """Create the directory `path` (or, with `directory=False`, the one that will hold the file
    `path`) and check that this process can write there, so that a run does not find out at its
    first checkpoint.

    Returns:
        The directory, created if it was missing.

    Raises:
        Unmet: it cannot be created or is not writable, naming `option`.
    """
    folder = Path(path) if directory else Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise Unmet(
            f"{option} {path}: cannot create {folder} ({error.strerror}); choose another {option}"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise Unmet(f"{option} {path}: {folder} is not writable; choose another {option}")
    return folder


# The flag that skips `require_memory`, the same in every model command line.
IGNORE_MEMORY_FLAG = "--ignore-memory-check"


def available_host_memory() -> int | None:
    """Bytes of RAM this process can still take without swapping: Linux's `MemAvailable`
    (free memory plus caches it can drop), else free pages from `os.sysconf`; None where
    neither is known."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def available_memory(device: Any) -> int | None:
    """Bytes the command can still take on `device`: a GPU's free memory, or the host's
    available RAM (`available_host_memory`) for the CPU.

    Arguments:
        device: a `torch.device` (its free memory from `torch.cuda.mem_get_info`), a
            `jax.Device` (its allocator's limit less what is in use, from `memory_stats`), or
            None for the host.

    Returns:
        Bytes, or None where the device does not tell (then `require_memory` checks nothing).
    """
    if device is None or device_name(device) == "cpu":
        return available_host_memory()
    if hasattr(device, "platform"):  # a JAX device
        statistics = device.memory_stats() or {}
        if "bytes_limit" not in statistics:
            return None
        return int(statistics["bytes_limit"]) - int(statistics.get("bytes_in_use", 0))
    if device.type == "cuda":
        import torch  # the caller's device is torch's, so torch is there

        return int(torch.cuda.mem_get_info(device)[0])
    return None


def require_memory(needed: int, available: int | None, *, what: str, where: str, fix: str) -> None:
    """Check before the long work that the memory `what` needs (an estimate, in bytes) fits in
    what `where` has available (None: unknown, not checked).

    Arguments:
        needed: the estimate, bytes.
        available: bytes available on the device (`available_memory(device)`).
        what: what needs it, as the user asked for it (`xut-flow train --preset xut-small
            --batch-size 256`).
        where: the device (`cpu`, `cuda:0`).
        fix: what to change, in the command's own flags (`use --preset tiny or a smaller
            --batch-size`).

    Raises:
        Unmet: it does not fit; one line with the estimate, what is available, `fix`, and the
            flag that skips the check (`IGNORE_MEMORY_FLAG`).
    """
    if available is None or needed <= available:
        return
    raise Unmet(
        f"{what} needs about {_gib(needed)} of memory (an estimate) and {where} has "
        f"{_gib(available)} available; {fix}, or pass {IGNORE_MEMORY_FLAG} to start anyway"
    )


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


def quiet_libraries(verbose: bool = False) -> None:
    """Hide the INFO logs of `CHATTY_LOGGERS` (warnings still show), or show them with
    `verbose` (a command's `-v`)."""
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)


def announce(program: str, device: str, backend: str | None = None) -> None:
    """Print the line a command starts with, on stderr: where it runs, and which tsu-core
    backend samples where one does (`bitflip-dtm: device cuda:0, backend jax-sim`)."""
    where = f"device {device}" + (f", backend {backend}" if backend else "")
    print(f"{program}: {where}", file=sys.stderr)


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def deviations(
    parser: argparse.ArgumentParser, expected: Mapping[str, Iterable[str]] | None = None
) -> list[str]:
    """Where `parser` departs from the convention, one line each (empty: it follows it).

    Hidden options (help=argparse.SUPPRESS: old spellings kept for scripts) are not read.

    Arguments:
        parser: the command's parser; its subcommands are read too.
        expected: subcommand -> the convention's options it must take, e.g.
            `{"train": ["--device", "--seed", "--data", "--out", "--max-minutes"]}`.

    Returns:
        Lines "PROG: what departs (what the convention asks)".
    """
    found = []
    for command in _parsers(parser):
        found += _command_deviations(command)
    subcommands = _subcommands(parser)
    for name, options in (expected or {}).items():
        if name not in subcommands:
            found.append(f"{parser.prog}: no subcommand {name!r} (expected by the check)")
            continue
        given = {
            string for action in _visible(subcommands[name]) for string in action.option_strings
        }
        found += [
            f"{subcommands[name].prog}: no {option} (the convention's name for it)"
            for option in options
            if option not in given
        ]
    return found


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """`parser` and every parser below it, each once (an alias names the same parser)."""
    yield parser
    seen: set[int] = set()
    for sub in _subcommands(parser).values():
        if id(sub) not in seen:
            seen.add(id(sub))
            yield from _parsers(sub)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return {
        name: sub
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name, sub in action.choices.items()
    }


def _visible(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        action
        for action in parser._actions
        if action.help is not argparse.SUPPRESS
        and not isinstance(action, argparse._SubParsersAction)
    ]


def _command_deviations(parser: argparse.ArgumentParser) -> list[str]:
    prog, found = parser.prog, []
    has_subcommands = bool(_subcommands(parser))
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            described = {choice.dest for choice in action._choices_actions if choice.help}
            found += [
                f"{prog}: subcommand {name!r} has no help line in `{prog} --help`"
                for name in action.choices
                if name not in described
            ]
    for action in _visible(parser):
        if not action.option_strings:
            found.append(
                f"{prog}: positional argument {action.dest!r}: take it as an option "
                "(--data, --out, --checkpoint, ...), so that every input is named"
            )
            continue
        name = max(action.option_strings, key=len)
        if has_subcommands and name not in BEFORE_SUBCOMMAND:
            found.append(f"{prog}: {name} goes after the subcommand ({prog} COMMAND {name} ...)")
        found += [
            f"{prog}: {string}: use {REPLACED[string]}"
            for string in action.option_strings
            if string in REPLACED
        ]
        if not (action.help or "").strip():
            found.append(f"{prog}: {name} has no help")
        elif _states_no_default(parser, action):
            found.append(
                f"{prog}: {name}: --help shows no default (say what happens without it, or "
                "use tsu_core.cli_convention.HelpFormatter)"
            )
    return found


def _states_no_default(parser: argparse.ArgumentParser, action: argparse.Action) -> bool:
    """Whether `action` takes a value whose default its help in `parser --help` does not show."""
    if action.nargs == 0 or action.required or isinstance(action, argparse._AppendAction):
        return False
    shown = parser._get_formatter()._expand_help(action)
    return ("default" not in shown and "required" not in shown) or "default: None" in shown
