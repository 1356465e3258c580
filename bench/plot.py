"""The PNG plot of a `shadow-bench` report (matplotlib; run by shadow-bench in its own process).

Three panels: median command latency per implementation with p90 whiskers and our speed-up over each; per-token
decode time per implementation against the memory-bandwidth bound; the distribution of our per-command latency.

    python -m shadow_edge.bench.plot REPORT.json OUT.png
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

OURS = "shadow-edge"


def _implementations(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    ours = (f"{OURS}\n({report.get('precision')}, {report.get('mode')})", report)
    refs = [(name, entry) for name, entry in (report.get("against") or {}).items() if "error" not in entry]
    return [ours, *refs]


def plot_report(report: dict[str, Any], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    impls = _implementations(report)
    names = [n for n, _ in impls]
    colors = ["tab:green"] + ["tab:gray"] * (len(impls) - 1)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))

    ax = axes[0]
    medians = [e["command_latency_ms"]["median"] for _, e in impls]
    p90 = [e["command_latency_ms"]["p90"] for _, e in impls]
    ax.bar(
        names,
        medians,
        color=colors,
        yerr=[[0] * len(medians), [b - a for a, b in zip(medians, p90, strict=True)]],
        capsize=4,
    )
    bottom = min(medians) / 3
    for i, (_, entry) in enumerate(impls):
        label = f"{medians[i]:.1f} ms"
        if i and entry.get("speedup"):
            label += f"\nours {entry['speedup']:.1f}x\nfaster"
        middle = (bottom * medians[i]) ** 0.5  # halfway up the bar on the log axis, clear of the whisker
        ax.text(i, middle, label, ha="center", va="center", fontsize=8, color="white", fontweight="bold")
    ax.set_yscale("log")
    ax.set_ylim(bottom=bottom)
    ax.set_ylabel("command latency, ms (median; whisker: p90)")
    ax.set_title("text in -> validated program out")

    ax = axes[1]
    decode = [(n, e.get("decode_ms_per_token", {}).get("median")) for n, e in impls]
    decode = [(n, v) for n, v in decode if v is not None]
    ax.bar([n for n, _ in decode], [v for _, v in decode], color=colors[: len(decode)])
    bound = report.get("bandwidth_bound_ms_per_token")
    if bound:
        ax.axhline(bound, color="tab:red", linestyle="--", label=f"bandwidth bound (ours) {bound:.2f} ms")
        ax.legend(fontsize=8)
    ax.set_yscale("log")
    values = [v for _, v in decode] + ([bound] if bound else [])
    if values:
        ax.set_ylim(bottom=min(values) / 3)
    ax.set_ylabel("decode time per token, ms (median)")
    ratio = report.get("bandwidth_bound_ratio")
    ax.set_title("per-token decode" + (f" (ours {ratio:.1f}x the bound)" if ratio else ""))

    ax = axes[2]
    samples = (report.get("samples") or {}).get("command_latency_ms") or []
    if samples:
        ax.hist(samples, bins=40, color="tab:green")
        for key, style in (("median", "-"), ("p90", "--")):
            ax.axvline(report["command_latency_ms"][key], color="black", linestyle=style, label=key)
        ax.legend(fontsize=8)
    ax.set_xlabel("command latency, ms")
    ax.set_ylabel("commands")
    ax.set_title(f"{OURS}: {len(samples)} commands, peak RSS {report.get('peak_rss_mb')} MB")

    machine = report.get("machine") or {}
    fig.suptitle(
        f"shadow-bench {report.get('model_dir')} on {machine.get('cpu')} (threads: {report.get('threads')})"
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m shadow_edge.bench.plot REPORT.json OUT.png", file=sys.stderr)
        return 2
    try:
        report = json.loads(Path(args[0]).read_text(encoding="utf-8"))
        plot_report(report, Path(args[1]))
    except Exception as exc:  # one line for shadow-bench to show
        print(f"cannot plot {args[0]}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
