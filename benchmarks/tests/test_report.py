"""Tests of benchmarks/report.py: the committed page is current, and the check can fail."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import report  # noqa: E402


@pytest.fixture
def copy(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the records and the page, to edit."""
    results = tmp_path / "results"
    shutil.copytree(report.RESULTS_DIR, results)
    page = tmp_path / "RESULTS.md"
    shutil.copy(report.PAGE, page)
    return results, page


def _record(**fields) -> report.Record:
    base = dict(
        package="tsu-core",
        key="speed",
        what="a speed",
        value=1.0,
        unit="updates/ns",
        device="cpu (2 cores)",
        date="2026-12-01",
        commit="0000000",
        command="python benchmarks/x.py",
        headline=True,
    )
    return report.Record(**{**base, **fields})


def test_results_page_is_current_with_the_records():
    assert report.page_is_current(report.RESULTS_DIR, report.PAGE), (
        "benchmarks/RESULTS.md is out of date: run `python benchmarks/report.py` and commit it"
    )


def test_check_fails_after_a_headline_record_changes(copy):
    results, page = copy
    assert report.main(["--results-dir", str(results), "--page", str(page), "--check"]) == 0
    path = results / "tsu-jax-sim.jsonl"
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if json.loads(line)["key"] == "dtm64-whole-call")
    record = json.loads(lines[index])
    record["value"] = 999.0
    lines[index] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    assert report.main(["--results-dir", str(results), "--page", str(page), "--check"]) == 1
    assert report.main(["--results-dir", str(results), "--page", str(page)]) == 0
    assert "**999.0** updates/ns" in page.read_text()
    assert report.page_is_current(results, page)


def test_check_fails_after_the_page_is_edited_by_hand(copy):
    results, page = copy
    page.write_text(page.read_text() + "\nedited by hand\n")
    assert not report.page_is_current(results, page)


def test_newest_record_of_a_key_is_shown_in_first_seen_order():
    records = [
        _record(key="a", value=1.0, date="2026-12-01"),
        _record(key="b", value=5.0),
        _record(key="a", value=3.0, date="2026-12-03"),
        _record(key="a", value=2.0, date="2026-12-02"),
        _record(key="c", value=7.0, headline=False),
    ]
    shown = report.current_headlines(records)
    assert [(record.key, record.value) for record in shown] == [("a", 3.0), ("b", 5.0)]


def test_add_appends_a_stamped_record_and_regenerates(copy):
    results, page = copy
    before = (results / "bitflip-dtm.jsonl").read_text().count("\n")
    code = report.main(
        ["--results-dir", str(results), "--page", str(page), "add", "bitflip-dtm"]
        + ["--key", "fid-paper", "--what", "FID, paper preset", "--value", "50.5"]
        + ["--anchor", "floor", "23.2", "--ratio", "2.18", "--ratio-of", "FID / floor"]
        + ["--headline", "--device", "NVIDIA H100 80GB HBM3", "--command", "python3 x.py"]
    )
    assert code == 0
    lines = (results / "bitflip-dtm.jsonl").read_text().splitlines()
    assert len(lines) == before + 1
    added = report.Record.from_json(lines[-1])
    assert added.value == 50.5 and added.anchor == report.Anchor("floor", 23.2)
    assert len(added.commit) >= 7 and report.DATE_FORMAT.fullmatch(added.date)
    assert report.page_is_current(results, page)
    assert "**50.5**" in page.read_text()


def test_add_from_a_benchmarks_json_lines(copy, tmp_path):
    results, page = copy
    output = tmp_path / "out.jsonl"
    output.write_text(
        "progress on stderr would not be here\n"
        + json.dumps({"what": "run", "config": {"preset": "paper"}})
        + "\n"
        + json.dumps(
            {
                "what": "FID",
                "config": {"preset": "paper"},
                "device": "cpu",
                "value": 70.1,
                "unit": "",
                "floor": 23.0,
            }  # fmt: skip
        )
        + "\n"
    )
    argv = ["--results-dir", str(results), "--page", str(page), "add", "bitflip-dtm"]
    assert report.main([*argv, "--command", "python3 b.py", "--from", str(output)]) == 0
    added = report.Record.from_json((results / "bitflip-dtm.jsonl").read_text().splitlines()[-1])
    assert (added.what, added.value, added.device, added.key) == ("FID", 70.1, "cpu", "fid")
    assert added.config == {"preset": "paper", "floor": 23.0} and not added.headline


def test_a_record_with_an_unknown_field_is_refused(copy):
    results, _ = copy
    with open(results / "tsu-core.jsonl", "a") as handle:
        handle.write(_record().to_json()[:-1] + ', "valu": 3}\n')
    with pytest.raises(ValueError, match="unknown fields"):
        report.load_records(results)


def test_add_refuses_an_unknown_package(copy):
    results, page = copy
    argv = ["--results-dir", str(results), "--page", str(page), "add", "bitflip_dtm"]
    with pytest.raises(SystemExit, match="unknown package"):
        report.main([*argv, "--command", "x", "--key", "k", "--what", "w", "--value", "1"])
    assert not (results / "bitflip_dtm.jsonl").exists()


def test_keys_lists_the_current_headlines(capsys):
    assert report.main(["keys", "tsu-jax-sim"]) == 0
    assert "tsu-jax-sim\tdtm64-whole-call\t83.0 updates/ns" in capsys.readouterr().out


def test_lines_alike_but_for_their_config_get_keys_that_tell_them_apart(copy, tmp_path):
    results, page = copy
    output = tmp_path / "out.jsonl"
    lines = [
        {
            "what": "sampling time per 64 images",
            "config": {"backend": name, "images": 64},
            "device": "cpu",
            "value": value,
            "unit": "s",
        }  # fmt: skip
        for name, value in (("jax-sim", 0.1), ("thrml", 0.2))
    ]
    output.write_text("".join(json.dumps(line) + "\n" for line in lines))
    argv = ["--results-dir", str(results), "--page", str(page), "add", "bitflip-dtm"]
    assert report.main([*argv, "--command", "c", "--headline", "--from", str(output)]) == 0
    added = (results / "bitflip-dtm.jsonl").read_text().splitlines()[-2:]
    keys = [report.Record.from_json(line).key for line in added]
    assert keys == [
        "sampling-time-per-64-images-backend-jax-sim",
        "sampling-time-per-64-images-backend-thrml",
    ]
