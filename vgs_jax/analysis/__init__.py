"""Analyses of visually grounded speech models (issue 6).

Metrics on arrays (NumPy; no model):

* ``abx``: DTW-based ABX phone discriminability (sota-and-metrics.md D.1).
* ``rsa``: representational similarity analysis (D.2).
* ``probes``: diagnostic classifiers and relative error reduction (D.3).
* ``boundaries``: boundaries as peaks of the cosine change or the L2 norm of frames, P/R/F1 and R-value (D.4).
* ``word_presence``: per-word presence probes on pooled activations.
* ``attention_words``: pooling attention summed per word and per word class.
* ``gating``: image retrieval of a word's concept from truncated speech (needs the model's embedders).
* ``localization``: word localisation in images through matchmaps (DAVEnet-style).
* ``lexicon``: audio-visual lexicon discovery from matchmap peaks (k-means groundings).
* ``vq_units``: VQ code-phone purity/NMI, code-word detection F1 and bitrate (D.5).
* ``semantics``: SICK relatedness correlation and relatedness of retrieved captions (D.6).
* ``heatmaps``: PNGs of per-word matchmap heatmaps over the image.

Model glue and reporting:

* ``activations``: per-layer frame activations (platalea_gru) of a checkpoint, trained and random init.
* ``map_analyses``: the callables the matchmap/VQ/semantic analyses need, built from a checkpoint.
* ``data_fields``: the example fields (alignments, object labels) each analysis reads.
* ``suite``: every analysis, trained vs random init; `analyze_workdir` behind `python -m vgs_jax.analyze`.
* ``layer_metrics``: the per-layer adapters (activations -> probe/ABX/boundary/word-presence/attention scores).
* ``reporting``: the report's text tables and strict JSON.
* ``plots``: the report's PNGs.
"""
