"""Multilingual visually grounded speech (survey §7; Harwath et al. 2018a, Havard et al. 2019a, Ohishi et al.
2020a): one image tower and one speech tower per language in one embedding space (`model`), ranking terms
over language-image and language-language pairs (`objective`), batches of parallel captions (`data`), and
per-language and cross-lingual retrieval (`evaluation`). Configs: configs/shapes_multilingual_*.py,
configs/places_bilingual_davenet.py."""
