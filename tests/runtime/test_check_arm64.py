"""scripts/check_arm64.sh parses, and its verdict (scripts/arm64_runtime_check.py compare) catches every mismatch.

The real check needs root, debootstrap and qemu and takes minutes; it is run by hand (see the script's header).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _load_helper():
    spec = importlib.util.spec_from_file_location("arm64_runtime_check", SCRIPTS / "arm64_runtime_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


helper = _load_helper()


def test_shell_script_syntax():
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    subprocess.run([bash, "-n", str(SCRIPTS / "check_arm64.sh")], check=True)


def test_help_needs_nothing(tmp_path):
    out = subprocess.run(["bash", str(SCRIPTS / "check_arm64.sh"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "qemu" in out.stdout


def test_missing_model_dir_tells_to_export(tmp_path):
    out = subprocess.run(
        ["bash", str(SCRIPTS / "check_arm64.sh"), str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "shadow-export" in out.stderr


def test_rows_are_spread_over_the_file(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(100)))
    rows = helper.select_rows(path, 4)
    assert [r["text"] for r in rows] == ["t0", "t25", "t50", "t75"]
    assert len(helper.select_rows(path, 500)) == 100


def _run(machine: str, confidences=(0.9, 0.5), programs=("sit", "move x=1")) -> dict:
    return {
        "machine": machine,
        "platform": f"Linux-{machine}",
        "python": "3.11",
        "versions": {"numpy": "2", "onnxruntime": "1.32", "tokenizers": "0.22"},
        "torch_imported": False,
        "wall_s": 1.0,
        "results": [
            {
                "text": f"cmd {i}",
                "expected": p,
                "program": p,
                "route": "robot",
                "accepted": True,
                "confidence": c,
                "error": None,
            }
            for i, (p, c) in enumerate(zip(programs, confidences, strict=True))
        ],
    }


JUNIT_OK = '<testsuites><testsuite tests="3" failures="0" errors="0" skipped="1"><testcase classname="a" name="b"/></testsuite></testsuites>'
JUNIT_FAIL = '<testsuites><testsuite tests="3" failures="1" errors="0" skipped="0"><testcase classname="a" name="b"><failure/></testcase></testsuite></testsuites>'


def _compare(
    tmp_path, x86: dict, arm: dict, junit: str = JUNIT_OK, precision: str | None = None
) -> tuple[int, dict]:
    extra = []
    if precision is not None:
        (tmp_path / "model").mkdir(exist_ok=True)
        (tmp_path / "model" / "manifest.json").write_text(json.dumps({"precision": precision}))
        extra = ["--model-dir", str(tmp_path / "model")]
    (tmp_path / "x.json").write_text(json.dumps(x86))
    (tmp_path / "a.json").write_text(json.dumps(arm))
    (tmp_path / "j.xml").write_text(junit)
    out = tmp_path / "report.json"
    rc = helper.main(
        [
            "compare",
            "--x86",
            str(tmp_path / "x.json"),
            "--arm64",
            str(tmp_path / "a.json"),
            "--junit",
            str(tmp_path / "j.xml"),
            "--out",
            str(out),
            *extra,
        ]
    )
    return rc, json.loads(out.read_text())


def test_equal_runs_pass(tmp_path):
    rc, report = _compare(tmp_path, _run("x86_64"), _run("aarch64", confidences=(0.9004, 0.5)))
    assert rc == 0 and report["ok"]
    assert report["programs_equal"] == 2
    assert report["max_confidence_diff"] == pytest.approx(4e-4)
    assert report["tests"] == {"passed": 2, "failed": 0, "errors": 0, "skipped": 1, "failed_tests": []}


@pytest.mark.parametrize(
    "change",
    ["program", "confidence", "machine", "torch", "texts"],
)
def test_any_difference_fails(tmp_path, change):
    x86, arm = _run("x86_64"), _run("aarch64")
    arm = copy.deepcopy(arm)
    if change == "program":
        arm["results"][1]["program"] = "move x=2"
    elif change == "confidence":
        arm["results"][0]["confidence"] = 0.902
    elif change == "machine":
        arm["machine"] = "x86_64"
    elif change == "torch":
        arm["torch_imported"] = True
    else:
        arm["results"][0]["text"] = "something else"
    rc, report = _compare(tmp_path, x86, arm)
    assert rc == 1 and not report["ok"]
    assert report["problems"]


def test_failed_tests_fail(tmp_path):
    rc, report = _compare(tmp_path, _run("x86_64"), _run("aarch64"), junit=JUNIT_FAIL)
    assert rc == 1
    assert report["tests"]["failed_tests"] == ["a::b"]


@pytest.mark.parametrize(
    ("precision", "x86_confidence", "ok"), [("int8", 0.24, True), ("int8", 0.8, False), ("fp32", 0.24, False)]
)
def test_quantized_exports_may_flip_only_unsure_unexecuted_programs(tmp_path, precision, x86_confidence, ok):
    """INT8 kernels differ between x86 and ARM: a near-tie may flip where neither side would move the robot."""
    x86, arm = _run("x86_64"), _run("aarch64")
    for run, program, confidence in ((x86, "reject", x86_confidence), (arm, "remote", x86_confidence + 0.02)):
        run["results"][0].update(program=program, route=program, accepted=False, confidence=confidence)
    rc, report = _compare(tmp_path, x86, arm, precision=precision)
    assert (rc == 0) == ok and report["precision"] == precision
    assert len(report["unsure_flips"]) == int(ok)
