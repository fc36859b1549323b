"""Published benchmark figures: the records under `benchmarks/results/` and the page made of them.

Each file `benchmarks/results/<package>.jsonl` holds one JSON object per line, one measurement
each (a `Record`). `benchmarks/RESULTS.md` is generated from them: per package, one table of
the current headline figures, that is the newest record of each headline `key`. Everything else
(older measurements, diagnostics, variants not kept) stays in the records and in git.

    python benchmarks/report.py              regenerate benchmarks/RESULTS.md
    python benchmarks/report.py --check      exit 1 if RESULTS.md is out of date with the records
    python benchmarks/report.py add PACKAGE --key KEY --what WHAT --value VALUE --unit UNIT \\
        --command "CMD" [--device DEVICE] [--headline] [--anchor WHAT VALUE UNIT] [--ratio R] ...
                                             append one record, then regenerate the page
    python benchmarks/report.py add PACKAGE --command "CMD" --from out.jsonl [--headline]
                                             append a benchmark's JSON lines, then regenerate
    python benchmarks/report.py keys [PACKAGE]   the headline keys and their current figures

`add` fills in the commit (`git rev-parse --short HEAD`), the date (today, UTC) and, where
`--device` is not given, the device of this machine; `--commit` and `--date` override them.
Standard library only.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
PACKAGES = BENCHMARKS.parent / "packages"
RESULTS_DIR = BENCHMARKS / "results"
PAGE = BENCHMARKS / "RESULTS.md"
# Package order on the page: the core first, then backends, then what is built on them.
PACKAGE_ORDER = (
    "tsu-core",
    "tsu-jax-sim",
    "tsu-thrml",
    "tsu-torch",
    "bitflip-dtm",
    "thought-diffusion",
    "xut-flow",
)
DATE_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Anchor:
    """What a figure is compared with: another implementation, a floor, a published value."""

    what: str
    value: float | int | str | None = None
    unit: str = ""


@dataclass(frozen=True)
class Record:
    """One published measurement: one line of `benchmarks/results/<package>.jsonl`.

    **Fields**

    - `package`: the package the figure belongs to (also the file's name).
    - `key`: names the figure across measurements; the page shows the newest record of each
      key that has `headline` set (newest by `date`, then by position in the file).
    - `what`, `value`, `unit`, `config`: the figure. `value` is a number, or the text of a figure
      that holds several numbers (records converted from the old hand-written page).
    - `device`, `date` (YYYY-MM-DD, UTC), `commit` (the code measured), `command` (exact, run
      from the repository root).
    - `headline`: shown on the page (while it is the newest of its key) or history only.
    - `anchor`, `ratio`, `ratio_of`: what the figure is compared with, the ratio as the benchmark
      states it, and which way the ratio is taken (for example "jax-sim / thrml").
    - `target`: the target and whether it is met, where the issue set one.
    - `note`: anything a reader needs beside the figure; `source`: where a converted record came
      from and how its date and commit were found.
    """

    package: str
    key: str
    what: str
    value: float | int | str
    unit: str
    device: str
    date: str
    commit: str
    command: str
    headline: bool = False
    config: dict = field(default_factory=dict)
    anchor: Anchor | None = None
    ratio: float | None = None
    ratio_of: str | None = None
    target: str | None = None
    note: str | None = None
    source: str | None = None

    @classmethod
    def from_json(cls, text: str) -> Record:
        data = json.loads(text)
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fields {unknown}; a record has {sorted(known)}")
        if data.get("anchor") is not None:
            data["anchor"] = Anchor(**data["anchor"])
        record = cls(**data)
        record.validate()
        return record

    def to_json(self) -> str:
        data = {
            name: value
            for name, value in dataclasses.asdict(self).items()
            if value is not None and value != {}
        }
        return json.dumps(data, ensure_ascii=False)

    def validate(self) -> None:
        for name in ("package", "key", "what", "device", "date", "commit", "command"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"record {self.key!r}: `{name}` must be a non-empty string")
        if not DATE_FORMAT.fullmatch(self.date):
            raise ValueError(f"record {self.key!r}: date {self.date!r} is not YYYY-MM-DD")
        if not isinstance(self.value, int | float | str) or isinstance(self.value, bool):
            raise ValueError(f"record {self.key!r}: value must be a number or a text")
        if not isinstance(self.headline, bool):
            raise ValueError(f"record {self.key!r}: headline must be true or false")


def load_records(results_dir: Path) -> dict[str, list[Record]]:
    """The records of every `<package>.jsonl` under `results_dir`, in file order."""
    records: dict[str, list[Record]] = {}
    for path in sorted(results_dir.glob("*.jsonl")):
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = Record.from_json(line)
            except (ValueError, TypeError) as error:
                raise ValueError(f"{path}:{number}: {error}") from error
            if record.package != path.stem:
                raise ValueError(f"{path}:{number}: package {record.package!r} in {path.name}")
            rows.append(record)
        records[path.stem] = rows
    return records


def current_headlines(records: list[Record]) -> list[Record]:
    """The newest record of each headline key, in the order the keys first appear."""
    newest: dict[str, Record] = {}
    for record in records:
        if record.headline and (record.key not in newest or record.date >= newest[record.key].date):
            newest[record.key] = record  # later in the file wins a tie of dates
    order = list(dict.fromkeys(record.key for record in records if record.headline))
    return [newest[key] for key in order]


def _number(value: float | int | str) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    """A command as inline code (plain text where it is prose around code already)."""
    if "`" in text:
        return _cell(text)
    return "`" + _cell(text) + "`"


def _comparison(record: Record) -> str:
    parts = []
    if record.anchor is not None:
        anchor = record.anchor.what
        if record.anchor.value is not None:
            anchor += f" {_number(record.anchor.value)} {record.anchor.unit}".rstrip()
        parts.append(anchor)
    if record.ratio is not None:
        ratio = f"**{_number(record.ratio)}x**"
        parts.append(ratio + (f" ({record.ratio_of})" if record.ratio_of else ""))
    return ": ".join(parts)


def render(records: dict[str, list[Record]]) -> str:
    """The results page: per package, the current headline figures."""
    lines = [
        "# Published figures",
        "",
        "<!-- Generated by `python benchmarks/report.py` from benchmarks/results/*.jsonl;"
        " do not edit. -->",
        "",
        "The current headline figures of each package: for each, the newest measurement, with "
        "its device, date and exact command (run from the repository root). Every measurement, "
        "older ones and those not shown here, is a record in "
        "`benchmarks/results/` (one JSON-lines file per package, with its commit); "
        "[`benchmarks/README.md`](README.md) says how to add one. Only measured numbers appear "
        "here.",
    ]
    known = [name for name in PACKAGE_ORDER if name in records]
    for package in known + sorted(set(records) - set(PACKAGE_ORDER)):
        shown = current_headlines(records[package])
        if not shown:
            continue
        lines += [
            "",
            f"## {package}",
            "",
            "| figure | value | against | target | device | date | command |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for record in shown:
            value = f"**{_number(record.value)}** {record.unit}".rstrip()
            cells = [
                _cell(record.what),
                _cell(value),
                _cell(_comparison(record)),
                _cell(record.target or ""),
                _cell(record.device),
                record.date,
                _code(record.command),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_page(results_dir: Path, page: Path) -> None:
    page.write_text(render(load_records(results_dir)))


def page_is_current(results_dir: Path, page: Path) -> bool:
    return page.exists() and page.read_text() == render(load_records(results_dir))


def _git(*arguments: str) -> str:
    return subprocess.run(
        ["git", *arguments], cwd=BENCHMARKS, capture_output=True, text=True, check=True
    ).stdout.strip()


def this_device() -> str:
    """The first GPU's name where `nvidia-smi` answers, else the CPU count."""
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]
        names = subprocess.run(query, capture_output=True, text=True).stdout.split("\n")
        if names and names[0].strip():
            return names[0].strip()
    return f"cpu ({os.cpu_count()} cores)"


def append_records(package: str, records: list[Record], results_dir: Path, page: Path) -> None:
    """Append `records` to `results_dir/<package>.jsonl` and regenerate the page."""
    for record in records:
        record.validate()
        if record.package != package:
            raise ValueError(f"record of {record.package!r} given for {package!r}")
    results_dir.mkdir(parents=True, exist_ok=True)
    with open(results_dir / f"{package}.jsonl", "a") as handle:
        for record in records:
            handle.write(record.to_json() + "\n")
    write_page(results_dir, page)


def _parse_value(text: str) -> float | int | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _default_keys(records: list[Record]) -> list[Record]:
    """Give each record without a key the slug of its `what`, followed, where several records
    share that `what`, by the config values that tell them apart (e.g. `backend-thrml`)."""
    keyed = []
    for record in records:
        if record.key:
            keyed.append(record)
            continue
        alike = [other for other in records if not other.key and other.what == record.what]
        names = sorted({name for other in alike for name in other.config})
        differing = [
            name for name in names if len({repr(other.config.get(name)) for other in alike}) > 1
        ]
        parts = [record.what] + [f"{name} {record.config.get(name)}" for name in differing]
        keyed.append(dataclasses.replace(record, key=_slug(" ".join(parts))))
    return keyed


def _records_from_lines(lines: list[str], arguments: argparse.Namespace, stamp: dict) -> list:
    """Records from a benchmark's JSON lines: its `what`, `value`, `unit`, `device`, `config`,
    `ratio`, `anchor` and `key` are kept; any other field joins `config`."""
    records = []
    for line in lines:
        if not line.lstrip().startswith("{"):
            continue
        data = json.loads(line)
        value = data.pop("value", data.get("ratio"))
        if value is None:
            continue  # a line describing the run, not a figure
        anchor = data.pop("anchor", None)
        device = data.pop("device", None)
        fields = {
            "what": data.pop("what"),
            "key": data.pop("key", ""),
            "unit": data.pop("unit", ""),
            "ratio": data.pop("ratio", None),
            "config": data.pop("config", {}),
        }
        records.append(
            Record(
                package=arguments.package,
                value=value,
                device=arguments.device or device or this_device(),
                headline=arguments.headline,
                anchor=Anchor(**anchor) if isinstance(anchor, dict) else None,
                **{**fields, "config": {**fields["config"], **data}},
                **stamp,
            )
        )
    if arguments.key:
        if len(records) != 1:
            raise SystemExit(f"--key names one figure; {len(records)} lines have a value")
        records = [dataclasses.replace(records[0], key=arguments.key)]
    return _default_keys(records)


def _keys(arguments: argparse.Namespace) -> int:
    records = load_records(arguments.results_dir)
    for package in [arguments.package] if arguments.package else sorted(records):
        for record in current_headlines(records.get(package, [])):
            value = f"{_number(record.value)} {record.unit}".rstrip()
            print(f"{package}\t{record.key}\t{value}\t{record.date}\t{record.what[:60]}")
    return 0


def _add(arguments: argparse.Namespace) -> int:
    if not (PACKAGES / arguments.package / "pyproject.toml").exists():
        known = sorted(path.parent.name for path in PACKAGES.glob("*/pyproject.toml"))
        raise SystemExit(f"unknown package {arguments.package!r}; one of {known}")
    stamp = {
        "commit": arguments.commit or _git("rev-parse", "--short", "HEAD"),
        "date": arguments.date or datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "command": arguments.command,
        "target": arguments.target,
        "note": arguments.note,
        "ratio_of": arguments.ratio_of,
    }
    if arguments.source:
        text = sys.stdin.read() if arguments.source == "-" else Path(arguments.source).read_text()
        records = _records_from_lines(text.splitlines(), arguments, stamp)
        if not records:
            raise SystemExit(f"no figures (JSON lines with a value) in {arguments.source}")
    else:
        missing = [name for name in ("key", "what", "value") if getattr(arguments, name) is None]
        if missing:
            raise SystemExit(f"add needs --{' --'.join(missing)} (or --from a benchmark's output)")
        anchor = None
        if arguments.anchor:
            what, value, *unit = arguments.anchor
            anchor = Anchor(what, _parse_value(value), unit[0] if unit else "")
        config = dict(item.split("=", 1) for item in arguments.config)
        records = [
            Record(
                package=arguments.package,
                key=arguments.key,
                what=arguments.what,
                value=_parse_value(arguments.value),
                unit=arguments.unit,
                device=arguments.device or this_device(),
                headline=arguments.headline,
                config={name: _parse_value(value) for name, value in config.items()},
                anchor=anchor,
                ratio=None if arguments.ratio is None else float(arguments.ratio),
                **stamp,
            )
        ]
    append_records(arguments.package, records, arguments.results_dir, arguments.page)
    for record in records:
        print(record.to_json())
    target = arguments.results_dir / f"{arguments.package}.jsonl"
    print(f"appended {len(records)} record(s) to {target}; {arguments.page} regenerated")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if RESULTS.md is stale")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="the records")
    parser.add_argument("--page", type=Path, default=PAGE, help="the page to write or check")
    commands = parser.add_subparsers(dest="action")
    add = commands.add_parser("add", help="append records, then regenerate RESULTS.md")
    add.add_argument("package", help="the package, e.g. bitflip-dtm (names the .jsonl file)")
    add.add_argument("--command", required=True, help="the exact command that measured it")
    add.add_argument("--key", help="names the figure; the page shows the newest of each key")
    add.add_argument("--what", help="what was measured")
    add.add_argument("--value", help="the figure (a number, or a text)")
    add.add_argument("--unit", default="", help="its unit")
    add.add_argument("--config", nargs="*", default=[], metavar="NAME=VALUE")
    add.add_argument("--headline", action="store_true", help="show it on the page")
    add.add_argument("--anchor", nargs="+", metavar="ITEM", help="WHAT VALUE [UNIT]")
    add.add_argument("--ratio", help="the ratio to the anchor, as the benchmark states it")
    add.add_argument("--ratio-of", help='which way the ratio is taken, e.g. "jax-sim / thrml"')
    add.add_argument("--target", help='e.g. "75 updates/ns: met"')
    add.add_argument("--note")
    add.add_argument("--device", help="default: this machine's GPU, else its CPU count")
    add.add_argument("--commit", help="default: git rev-parse --short HEAD")
    add.add_argument("--date", help="YYYY-MM-DD; default: today (UTC)")
    add.add_argument(
        "--from", dest="source", metavar="FILE", help="a benchmark's JSON lines ('-': stdin)"
    )
    keys = commands.add_parser("keys", help="list the headline keys and their current figures")
    keys.add_argument("package", nargs="?", help="only this package")
    arguments = parser.parse_args(argv)
    if arguments.action == "add":
        return _add(arguments)
    if arguments.action == "keys":
        return _keys(arguments)
    if arguments.check:
        if page_is_current(arguments.results_dir, arguments.page):
            return 0
        print(
            f"{arguments.page} is out of date with the records in {arguments.results_dir}:"
            " run `python benchmarks/report.py` and commit the page",
            file=sys.stderr,
        )
        return 1
    write_page(arguments.results_dir, arguments.page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
