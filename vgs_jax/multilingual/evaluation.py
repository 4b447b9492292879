"""Multilingual retrieval: speech->image and image->speech per language, cross-lingual speech->speech.

Results (flat, `evaluation.flat_scalars`-ready), for languages A, B, ... of `config.multilingual`:

    "<A>/speech_to_image", "<A>/image_to_speech"   `evaluation.evaluate_split` on A's view (plus "<A>/ceiling"
                                                   where the split stores consistent image ids)
    "<A>-><B>", "<B>-><A>"                         each A caption ranks every B caption of the split; its one
                                                   match is the parallel caption of the same row (`data`)
    "speech_to_image", "image_to_speech"           the first language's, for best-checkpoint selection

Each entry holds r1, r5, r10, medr, meanr, n (`retrieval.summarize_ranks`).
"""

import itertools

import numpy as np

from vgs_jax import evaluation
from vgs_jax import retrieval
from vgs_jax.multilingual import data
from vgs_jax.multilingual import model as ml_model


def evaluate_split(template, params, source, *, ml_config, consistent: dict | None = None, **kwargs) -> dict:
    """The module's results for a parallel split `source` (kwargs as in `evaluation.evaluate_split`)."""
    views = data.parallel_views(source, ml_config)
    templates = ml_model.language_templates(template)
    results, speech = {}, {}
    for language, view in views.items():
        scored, emb = evaluation.evaluate_and_embed(templates[language], params, view, consistent=consistent, **kwargs)
        results.update({f"{language}/{name}": value for name, value in scored.items()})
        speech[language] = emb["z_speech"]
    for a, b in itertools.combinations(views, 2):
        both = retrieval.retrieval_metrics(speech[a], speech[b], np.arange(len(views[a])))
        results[f"{a}->{b}"], results[f"{b}->{a}"] = both["speech_to_image"], both["image_to_speech"]
    first = next(iter(views))
    for direction in retrieval.DIRECTIONS:
        results[direction] = results[f"{first}/{direction}"]
    return results


def format_results(results: dict) -> str:
    """A plain-text table of every per-language and cross-lingual entry: R@1/5/10 in percent, medr, n."""
    keys = [k for k in results if ("/" in k and k.split("/")[1] in retrieval.DIRECTIONS) or "->" in k]
    header = ("retrieval", "R@1%", "R@5%", "R@10%", "medr", "n")
    rows = [(k, *(f"{100 * results[k][r]:.1f}" for r in ("r1", "r5", "r10")), f"{results[k]['medr']:g}",
             f"{int(results[k]['n'])}") for k in keys]
    widths = [max(len(r[c]) for r in [header] + rows) for c in range(len(header))]
    return "\n".join("  ".join(x.ljust(w) if c == 0 else x.rjust(w) for c, (x, w) in enumerate(zip(r, widths)))
                     for r in [header] + rows)
