"""The console scripts of cli.md exist, answer --help, and refuse bad input plainly."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

COMMANDS = {
    # script name: (module, arguments a real run would take, issue that tracks the implementation)
    "shadow-export": ("shadow_edge.export.cli", ["--int8", "-o", "OUT"], 3),
    "shadow-run": ("shadow_edge.runtime.cli", ["MODEL_DIR", "--text", "sit down", "--json"], 4),
    "shadow-bench": ("shadow_edge.bench.cli", ["MODEL_DIR", "--against", "torch", "--json"], 4),
    "shadow-dog": ("shadow_dog.main", ["--transport", "dds"], 5),
    "shadow-serve": ("shadow_edge.serve.cli", ["MODEL_DIR", "--token-file", "TOKEN"], None),
}

# Every option of docs/spec/cli.md, as it must appear in --help.
CONTRACT_OPTIONS = {
    "shadow-export": ["--base", "--adapter", "--mode", "--int8", "--int4", "--fp32", "--calibration", "-o"],
    "shadow-run": ["MODEL_DIR", "--text", "--jsonl", "--wav", "--json"],
    "shadow-bench": ["MODEL_DIR", "--against", "--json"],
    "shadow-dog": [
        "MODEL_DIR",
        "--transport",
        "--params",
        "--model-dir",
    ],  # issue 5's node without ros2 launch
    "shadow-serve": ["MODEL_DIR", "--host", "--port", "--token-file", "--max-batch"],
}


def _run(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_entry_points_registered():
    expected = {name: f"{module}:main" for name, (module, _, _) in COMMANDS.items()}
    # in pyproject.toml (tomllib is 3.11+; the project supports 3.10)
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["scripts"] == expected


def test_entry_points_installed():
    installed = {ep.name: ep.value for ep in entry_points(group="console_scripts") if ep.name in COMMANDS}
    assert installed == {name: f"{module}:main" for name, (module, _, _) in COMMANDS.items()}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help(name, tmp_path):
    module = COMMANDS[name][0]
    result = _run(module, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {name}")
    for option in CONTRACT_OPTIONS[name]:
        assert option in result.stdout, f"{name} --help does not mention {option}"


@pytest.mark.parametrize("name", ["shadow-bench", "shadow-run"])
def test_missing_model_dir_is_a_clear_error(name, tmp_path):
    module, args, _ = COMMANDS[name]
    result = _run(module, *args, cwd=tmp_path)
    assert result.returncode != 0
    assert "MODEL_DIR" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_export_missing_adapter_is_a_clear_error(tmp_path):
    result = _run(
        "shadow_edge.export.cli", "--adapter", "no-such-adapter", "--int8", "-o", "OUT", cwd=tmp_path
    )
    assert result.returncode == 2
    assert (
        "no-such-adapter: adapter directory not found" in result.stderr and "Traceback" not in result.stderr
    )
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_export_without_arguments_parses():
    from shadow_edge.export.cli import build_parser

    args = build_parser().parse_args([])
    assert (args.mode, args.precision, args.out_dir) == ("detached", "fp32", "build/robot-dog")
    args = build_parser().parse_args(["--mode", "both", "--int4", "--calibration", "robot-dog", "-o", "x"])
    assert (args.mode, args.precision, args.calibration, args.out_dir) == ("both", "int4", "robot-dog", "x")


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("shadow_edge.export.cli", ["--int8", "--int4"]),
        ("shadow_edge.export.cli", ["--mode", "sideways"]),
        ("shadow_edge.runtime.cli", []),
        ("shadow_edge.runtime.cli", ["M", "--text", "sit", "--wav", "a.wav"]),
        ("shadow_edge.bench.cli", []),
        ("shadow_edge.bench.cli", ["M", "--against", "sideways"]),
        ("shadow_edge.bench.cli", ["M", "--commands", "-1"]),
    ],
)
def test_bad_arguments_are_usage_errors(module, args):
    main = __import__(module, fromlist=["main"]).main
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2


def test_dog_takes_the_model_dir_like_run_and_bench():
    from shadow_dog.main import build_parser, config_from_args, main

    for argv in (["exported"], ["--model-dir", "exported"], ["exported", "--model-dir", "exported"]):
        args = build_parser().parse_args(argv)
        if args.model_dir_arg is not None:
            args.model_dir = args.model_dir_arg
        assert config_from_args(args).model_dir == "exported"
    with pytest.raises(SystemExit) as info:
        main(["one", "--model-dir", "other"])
    assert info.value.code == 2


def test_dog_bad_parameter_is_bad_input(capsys):
    from shadow_dog.main import main

    assert main(["-p", "no-equals-sign"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
