"""Grounding in video (survey §6) on `moving_shapes`: Boggust et al. 2019 (still frames + audio
segments, sampling strategies) and an AVLNet-style audio-video model; `python -m vgs_jax.video.train`."""
