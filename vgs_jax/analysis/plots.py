"""Plots of an analysis report (trained vs random init), written as PNGs (Agg backend).

Layer analyses: a line per model over the layers. Map analyses (`map_analyses`): grouped bars,
trained vs random, of each analysis's headline numbers; heatmaps are drawn by `heatmaps` itself.
"""

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


def plot_word_presence(report: dict, path: str) -> str:
    """Word-presence probe: macro F1 and accuracy (percent) by layer, with the majority baseline."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in ((left, "f1"), (right, "accuracy")):
        _panel(ax, report, report["layers"],
               {"probe": lambda r, m=metric: r["word_presence"] and r["word_presence"]["macro"][m],
                "majority": lambda r, m=metric: r["word_presence"] and r["word_presence"]["macro"]["baseline_" + m]},
               title=f"Word presence, macro {metric} ({len(report.get('word_vocabulary', []))} words)",
               ylabel=f"{metric} (%)")
    return _save(fig, path)


def plot_gating(report: dict, path: str) -> str:
    """Gating: mean rank of the concept's images and R@10 (percent) against the gate (fraction of the word)."""
    gate = report["gating"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for which in ("trained", "random"):
        x = [100 * f for f in gate[which]["fractions"]]
        left.plot(x, gate[which]["mean_rank"], label=which, **STYLES[which])
        right.plot(x, [100 * v for v in gate[which]["r10"]], label=which, **STYLES[which])
    right.axhline(100 * gate["trained"]["chance_r10"], color="grey", linestyle=":", label="chance")
    for ax, title, ylabel in ((left, "Concept image rank (lower is better)", "mean rank"),
                              (right, "Concept image R@10", "R@10 (%)")):
        ax.set_title(title)
        ax.set_xlabel("gate (% of the word heard)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_attention_words(report: dict, path: str) -> str:
    """Attention share per word class (trained, random) next to the share expected from duration."""
    att = report["attention_words"]
    classes = list(att["trained"]["classes"]) if att.get("trained") else []
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.27
    bars = [("trained", lambda c: att["trained"]["classes"][c]["share"]),
            ("random", lambda c: att["random"]["classes"].get(c, {}).get("share", float("nan"))),
            ("duration", lambda c: att["trained"]["classes"][c]["expected_share"])]
    for k, (label, get) in enumerate(bars):
        ax.bar([i + (k - 1) * width for i in range(len(classes))], [100 * get(c) for c in classes], width,
               label=label)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_title("Attention pooling share per word class")
    ax.set_ylabel("share of attention (%)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _bars(ax, groups: dict, *, title: str, ylabel: str, scale: float = 100.0, chance: dict | None = None) -> None:
    """Grouped bars: for each group label, trained vs random (and an optional chance bar)."""
    names = list(groups)
    series = [("trained", [groups[n][0] for n in names]), ("random", [groups[n][1] for n in names])]
    if chance is not None:
        series.append(("chance", [chance.get(n, float("nan")) for n in names]))
    width = 0.8 / len(series)
    for k, (label, values) in enumerate(series):
        ax.bar([i + (k - (len(series) - 1) / 2) * width for i in range(len(names))],
               [float("nan") if v is None else scale * v for v in values], width, label=label)
    ax.set_xticks(range(len(names)), names, fontsize=8, rotation=25, ha="right")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)


def plot_localization(report: dict, path: str) -> str:
    """Localisation accuracy overall and per word kind, with the cell-chance baseline (percent)."""
    t, r = report["localization"]["trained"], report["localization"]["random"]
    groups = {"all": (t["accuracy"], r["accuracy"])}
    groups.update({k: (v["accuracy"], r["per_kind"].get(k, {}).get("accuracy")) for k, v in t["per_kind"].items()})
    chance = {"all": t["chance"], **{k: v["chance"] for k, v in t["per_kind"].items()}}
    fig, ax = plt.subplots(figsize=(6, 4))
    _bars(ax, groups, title=f"Word localisation in matchmaps ({t['n']} words)", ylabel="accuracy (%)",
          chance=chance)
    return _save(fig, path)


def plot_lexicon(report: dict, path: str) -> str:
    """Lexicon discovery: purity and NMI of the grounding clusters against words and objects (percent)."""
    t, r = report["lexicon"]["trained"], report["lexicon"]["random"]
    keys = ("word_purity", "word_nmi", "object_purity", "object_nmi")
    fig, ax = plt.subplots(figsize=(6, 4))
    _bars(ax, {k.replace("_", " "): (t[k], r[k]) for k in keys},
          title=f"Audio-visual lexicon ({len(t['clusters'])} clusters)", ylabel="score (%)")
    return _save(fig, path)


def plot_vq_units(report: dict, path: str) -> str:
    """Per quantiser: code-phone purity/NMI and mean best word F1 (percent); bitrate (bit/s)."""
    t, r = report["vq_units"]["trained"], report["vq_units"]["random"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    groups = {}
    for q in t:
        groups[f"{q} purity"] = (t[q]["phones"]["purity"], r[q]["phones"]["purity"])
        groups[f"{q} NMI"] = (t[q]["phones"]["nmi"], r[q]["phones"]["nmi"])
        groups[f"{q} word F1"] = (t[q]["words"]["mean_f1"], r[q]["words"]["mean_f1"])
    _bars(left, groups, title="VQ codes vs phones and words", ylabel="score (%)")
    _bars(right, {q: (t[q]["bitrate"]["lossy_rle"], r[q]["bitrate"]["lossy_rle"]) for q in t},
          title="Bitrate (lossy run-length)", ylabel="bits / s", scale=1.0)
    return _save(fig, path)


def plot_semantics(report: dict, path: str) -> str:
    """Relatedness of the top-k retrieved captions vs random and bottom-k controls (and SICK if run)."""
    t, r = report["semantics"]["trained"], report["semantics"]["random"]
    keys = ("top_k", "random_k", "bottom_k")
    groups = {k: (t["retrieval"][k], r["retrieval"][k]) for k in keys}
    if "sick" in t:
        groups.update({f"SICK {k}": (t["sick"][k], r["sick"][k]) for k in ("pearson", "spearman")})
    fig, ax = plt.subplots(figsize=(6, 4))
    _bars(ax, groups, title=f"Semantic relatedness (k={t['retrieval']['k']})", ylabel="score", scale=1.0)
    return _save(fig, path)


PLOTS = {"probes": plot_probes, "abx": plot_abx, "boundaries": plot_boundaries, "rsa": plot_rsa,
         "word_presence": plot_word_presence, "gating": plot_gating, "attention": plot_attention_words}
MAP_PLOTS = {"localization": plot_localization, "lexicon": plot_lexicon, "vq_units": plot_vq_units,
             "semantics": plot_semantics}


def _map_ok(entry) -> bool:
    return (isinstance(entry, dict) and "not_applicable" not in entry
            and all(isinstance(entry[w], list) or "error" not in entry[w] for w in ("trained", "random")))


def write_plots(report: dict, output_dir: str) -> dict:
    """Writes ``<analysis>.png`` into `output_dir` for each analysis in ``report["analyses"]`` (the
    four layer plots for reports without that key) that has results; returns {analysis: path}, and
    for "heatmaps" the list of PNGs `heatmaps.run_heatmaps` wrote."""
    for key in ("layers", "trained", "random", "settings"):
        if key not in report:
            raise ValueError(f"report has no {key!r}; pass the dict suite.run_suite returns.")
    analyses = report.get("analyses", ("probes", "abx", "boundaries", "rsa"))
    os.makedirs(output_dir, exist_ok=True)
    names = {"attention": "attention_words"}
    out = {}
    for name in analyses:
        if name in PLOTS and (report["layers"] if name != "gating" else "gating" in report):
            out[name] = PLOTS[name](report, os.path.join(output_dir, f"{names.get(name, name)}.png"))
        elif name in MAP_PLOTS and _map_ok(report.get(name)):
            out[name] = MAP_PLOTS[name](report, os.path.join(output_dir, f"{name}.png"))
        elif name == "heatmaps" and _map_ok(report.get(name)):
            out[name] = report[name]["trained"] + report[name]["random"]
    return out
