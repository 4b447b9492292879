"""Clip retrieval of a trained video model, both directions (audio -> video, video -> audio).

Every clip (or, on episodes, every fragment centred on a mention) of the split is one audio query and
one video candidate; retrieval metrics follow `vgs_jax.retrieval`, whose "speech_to_image" is
audio -> video and "image_to_speech" video -> audio here. The Boggust model embeds a fragment's
centre frame; the AVLNet model all its frames. `python -m vgs_jax.evaluate --workdir=...` calls
`evaluate_checkpoint` for runs whose saved config has a `video` field.
"""
import functools

import jax
import ml_collections
import numpy as np

from vgs_jax import audio_features
from vgs_jax import checkpointing
from vgs_jax import data_sources
from vgs_jax import evaluation
from vgs_jax import retrieval
from vgs_jax.models import dual_encoder
from vgs_jax.video import data

MODELS = ("boggust", "avlnet")


def load_fragments(config, split: str, *, strategy: str, per_example: int | None, seed: int,
                   limit: int | None = None) -> data.Fragments:
    """`data.load` of `split` of config.dataset with config.video.fragment_seconds and the config's features."""
    source = data_sources.open_split(config.dataset.name, split, data_dir=config.dataset.data_dir,
                                     build_if_missing=config.dataset.build_if_missing)
    return data.load(source, audio_features.Featurizer.from_recipe(config.features.recipe),
                     seconds=config.video.fragment_seconds, per_example=per_example, strategy=strategy, seed=seed,
                     limit=limit)


def visual_input(model: str, frags: data.Fragments, index) -> np.ndarray:
    """What the visual tower of `model` sees at evaluation: the centre frames [n, S, S, 3] (boggust)
    or the videos [n, F, S, S, 3] (avlnet), uint8."""
    if model not in MODELS:
        raise ValueError(f"config.video.model must be one of {MODELS}; got {model!r}.")
    index = np.asarray(index)
    return frags.video[index, len(frags.frame_times) // 2] if model == "boggust" else frags.video[index]


@functools.partial(jax.jit, static_argnums=0)
def _embed_batch(graphdef, rest, params, model_state, feats, mask, visual):
    m = dual_encoder.merge_model(graphdef, params, model_state, rest)
    return m.embed_speech(feats, mask), m.embed_image(visual)


def embed(template, params, model: str, frags: data.Fragments, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(audio [N, E], video [N, E]) unit embeddings of every fragment, the model in eval mode."""
    za, zv = [], []
    mask = frags.mask
    for start in range(0, len(frags), batch_size):
        idx = np.arange(start, min(start + batch_size, len(frags)))
        pad = np.concatenate([idx, np.full(batch_size - len(idx), idx[-1])])  # one jit shape per run
        a, v = _embed_batch(template.graphdef, template.rest, params, template.model_state, frags.features[pad],
                            mask[pad], visual_input(model, frags, pad))
        za.append(np.asarray(a)[:len(idx)])
        zv.append(np.asarray(v)[:len(idx)])
    return np.concatenate(za), np.concatenate(zv)


def clip_retrieval(template, params, model: str, frags: data.Fragments, batch_size: int) -> dict:
    """`retrieval.retrieval_metrics` of audio against video (fragment i pairs with video i), plus
    "chance": the expected R@1/5/10 (k / N) and median rank ((N + 1) / 2) of a random ranking."""
    za, zv = embed(template, params, model, frags, batch_size)
    results = retrieval.retrieval_metrics(za, zv, np.arange(len(frags)))
    n = len(frags)
    results["chance"] = {"r1": 1 / n, "r5": min(1.0, 5 / n), "r10": min(1.0, 10 / n), "medr": (n + 1) / 2}
    return results


def eval_fragments(config, split: str) -> data.Fragments:
    """The evaluation fragments of `split`: clips whole; episodes one fragment centred on each mention."""
    return load_fragments(config, split, strategy="mention", per_example=None, seed=config.seed,
                          limit=config.dataset.get("max_eval_examples") or None)


def is_video_run(workdir: str, checkpoint: str | int = "latest") -> bool:
    """Whether the run in `workdir` saved a video config (a `video` field)."""
    ckpt = checkpointing.Checkpointer(workdir, read_only=True)
    try:
        return "video" in ckpt.restore_config(checkpoint)
    finally:
        ckpt.close()


def evaluate_checkpoint(workdir: str, *, checkpoint: str | int = "latest", split: str = "test",
                        batch_size: int | None = None) -> tuple[int, ml_collections.ConfigDict, dict]:
    """(step, saved config, `clip_retrieval` results on `split`) of the checkpoint in `workdir`."""
    step, config, template, params = evaluation.restore_model(workdir, checkpoint)
    results = clip_retrieval(template, params, config.video.model, eval_fragments(config, split),
                             batch_size or config.eval_batch_size)
    return step, config, results
