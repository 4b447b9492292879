"""Layer-by-layer plots of an analysis report (trained vs random init), written as PNGs (Agg backend)."""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

STYLES = {"trained": dict(marker="o", linestyle="-"), "random": dict(marker="s", linestyle="--")}


def _series(report: dict, which: str, layers: list[str], get) -> list[float]:
    out = []
    for layer in layers:
        value = get(report[which][layer])
        out.append(float("nan") if value is None else 100.0 * value)
    return out


def _panel(ax, report: dict, layers: list[str], lines: dict, *, title: str, ylabel: str) -> None:
    """One axis: for each (label -> getter) and each model, a line over `layers`."""
    for label, get in lines.items():
        for which in ("trained", "random"):
            ax.plot(layers, _series(report, which, layers, get), label=f"{label} ({which})", **STYLES[which])
    ax.set_title(title)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def _save(fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_probes(report: dict, path: str) -> str:
    """Local phone-probe accuracy (frame layers) and phoneme-presence accuracy (all layers), percent."""
    frame_layers = [l for l in report["layers"] if l != "pooled"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    _panel(left, report, frame_layers, {"probe": lambda r: r["local_probe"]["accuracy"],
                                        "majority": lambda r: r["local_probe"]["baseline_accuracy"]},
           title="Local phone probe", ylabel="accuracy (%)")
    _panel(right, report, report["layers"], {"probe": lambda r: r["global_probe"]["accuracy"],
                                             "majority": lambda r: r["global_probe"]["baseline_accuracy"]},
           title="Phoneme presence (mean-pooled)", ylabel="accuracy (%)")
    return _save(fig, path)


def plot_abx(report: dict, path: str) -> str:
    """ABX error (within and across speaker, percent, lower is better) by frame layer."""
    layers = [l for l in report["layers"] if l != "pooled"]
    fig, ax = plt.subplots(figsize=(6, 4))
    _panel(ax, report, layers, {"within": lambda r: r["abx_within"], "across": lambda r: r["abx_across"]},
           title="ABX phone discrimination", ylabel="error (%)")
    return _save(fig, path)


def plot_boundaries(report: dict, path: str) -> str:
    """Phone-boundary F1 and R-value (percent) by frame layer."""
    layers = [l for l in report["layers"] if l != "pooled"]
    fig, ax = plt.subplots(figsize=(6, 4))
    _panel(ax, report, layers, {"F1": lambda r: r["boundaries"]["f1"],
                                "R-value": lambda r: r["boundaries"]["r_value"]},
           title=f"Phone boundaries (±{1000 * report['settings']['tolerance']:.0f} ms)", ylabel="score (%)")
    return _save(fig, path)


def plot_rsa(report: dict, path: str) -> str:
    """RSA (x100) with the phone edit distance by layer."""
    fig, ax = plt.subplots(figsize=(6, 4))
    _panel(ax, report, report["layers"], {"Pearson": lambda r: r["rsa"]["pearson"],
                                          "Spearman": lambda r: r["rsa"]["spearman"]},
           title="RSA with phoneme edit distance", ylabel="correlation x100")
    return _save(fig, path)


def write_plots(report: dict, output_dir: str) -> dict[str, str]:
    """Writes probes.png, abx.png, boundaries.png and rsa.png into `output_dir`; returns their paths."""
    for key in ("layers", "trained", "random", "settings"):
        if key not in report:
            raise ValueError(f"report has no {key!r}; pass the dict suite.run_suite returns.")
    os.makedirs(output_dir, exist_ok=True)
    return {name: fn(report, os.path.join(output_dir, f"{name}.png"))
            for name, fn in (("probes", plot_probes), ("abx", plot_abx), ("boundaries", plot_boundaries),
                             ("rsa", plot_rsa))}
