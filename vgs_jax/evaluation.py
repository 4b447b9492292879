"""Embedding a split with a trained dual encoder and scoring cross-modal retrieval.

Shared by the training loop (periodic validation) and the `evaluate` binary, so the two cannot
drift apart. Every caption of the split is a query; images are de-duplicated by `image_id` in
first-seen order (an image with 5 spoken captions is embedded once in the image list).
"""

import functools
from typing import Callable, Sequence

from flax import nnx
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from vgs_jax import audio_features
from vgs_jax import checkpointing
from vgs_jax import input_pipeline
from vgs_jax import retrieval
from vgs_jax.objectives import similarity as similarity_lib
from vgs_jax.models import dual_encoder

SCORE_BLOCK = 512
"""Captions scored per call when retrieval uses a matchmap similarity (a [512, M] block of scores)."""
MATCHMAP_PAIRS_CHUNK = 64
"""Pairs per side of one matchmap block in evaluation (memory ~ 64^2 * cells * frames floats)."""


@functools.cache
def _embed_fn(template: dual_encoder.Template, with_maps: bool) -> Callable:
    """Jitted (params, model_state, audio, audio_mask, image) -> (speech outputs, image outputs);
    cached per base template, so validations during training compile once."""
    keys = ("embedding", "map", "map_mask") if with_maps else ("embedding",)

    @jax.jit
    def embed(params, model_state, audio, audio_mask, image):
        model = template.merge(params, model_state)  # eval mode
        speech, img = model.encode_speech(audio, audio_mask), model.encode_image(image)
        return {k: speech[k] for k in keys}, {k: img[k] for k in keys}

    return embed


def _to_host(x: jax.Array) -> np.ndarray:
    """The whole global array as NumPy on every host (each host fed only its slice)."""
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def embed_split(
    template: dual_encoder.Template,
    params,
    source: Sequence[dict],
    *,
    batch_size: int,
    featurize: Callable[[np.ndarray], np.ndarray],
    features_config: ml_collections.ConfigDict,
    pad_value: float,
    image_key: str,
    mesh: jax.sharding.Mesh,
    with_maps: bool = False,
) -> dict[str, np.ndarray]:
    """Embeds every example of `source` (model in eval mode, with the template's model state).

    Returns:
      dict with z_speech [N, E] (one row per caption, source order), z_image [M, E] (unique
      images, first-seen order), caption_image [N] (row of z_image for each caption),
      image_id [M] and caption_id [N]; with `with_maps` also speech_map [N, T', E] (zero-padded
      to the longest), speech_map_mask [N, T'], image_map [M, h, w, E], image_map_mask [M, h, w].
    """
    embed = _embed_fn(template.base, with_maps)
    speech, image, image_ids, caption_ids = [], [], [], []
    for batch in input_pipeline.make_eval_batches(
        source,
        batch_size=batch_size,
        featurize=featurize,
        max_frames=features_config.max_frames,
        bucket_boundaries=features_config.bucket_boundaries,
        pad_value=pad_value,
        image_key=image_key,
    ):
        sharded = input_pipeline.shard_batch(batch, mesh)
        out_speech, out_image = embed(
            params, template.model_state, sharded["audio"], sharded["audio_mask"], sharded[image_key]
        )
        valid = _to_host(sharded["example_mask"])
        speech.append({k: _to_host(v)[valid] for k, v in out_speech.items()})
        image.append({k: _to_host(v)[valid] for k, v in out_image.items()})
        image_ids.append(_to_host(sharded["image_id"])[valid])
        caption_ids.append(_to_host(sharded["caption_id"])[valid])
    image_ids = np.concatenate(image_ids)
    unique_ids, first, inverse = np.unique(image_ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # first-seen order
    rank_of = np.empty_like(order)
    rank_of[order] = np.arange(len(order))
    keep = first[order]
    out = {
        "z_speech": np.concatenate([b["embedding"] for b in speech]),
        "z_image": np.concatenate([b["embedding"] for b in image])[keep],
        "caption_image": rank_of[inverse],
        "image_id": unique_ids[order],
        "caption_id": np.concatenate(caption_ids),
    }
    if with_maps:
        frames = max(b["map"].shape[1] for b in speech)
        pad = lambda x: np.pad(x, [(0, 0), (0, frames - x.shape[1])] + [(0, 0)] * (x.ndim - 2))
        out["speech_map"] = np.concatenate([pad(b["map"]) for b in speech])
        out["speech_map_mask"] = np.concatenate([pad(b["map_mask"]) for b in speech])
        out["image_map"] = np.concatenate([b["map"] for b in image])[keep]
        out["image_map_mask"] = np.concatenate([b["map_mask"] for b in image])[keep]
    return out


def score_matrix(emb: dict, similarity: str) -> np.ndarray:
    """float32 [N, M] caption x image scores of `embed_split(..., with_maps=True)`'s output."""
    image = {"embedding": emb["z_image"], "map": emb["image_map"], "map_mask": emb["image_map_mask"]}
    blocks = []
    for start in range(0, len(emb["z_speech"]), SCORE_BLOCK):
        rows = slice(start, start + SCORE_BLOCK)
        speech = {"embedding": emb["z_speech"][rows], "map": emb["speech_map"][rows],
                  "map_mask": emb["speech_map_mask"][rows]}
        blocks.append(np.asarray(similarity_lib.similarity_matrix(speech, image, similarity,
                                                                  chunk_size=MATCHMAP_PAIRS_CHUNK)))
    return np.concatenate(blocks)


def evaluate_split(template, params, source, *, similarity: str = "cosine", **kwargs) -> dict:
    """Retrieval metrics (both directions) of the model on `source` under `similarity` (cosine:
    from embeddings; matchmap similarities: from the full score matrix); kwargs as in `embed_split`."""
    if similarity == "cosine":
        emb = embed_split(template, params, source, **kwargs)
        return retrieval.retrieval_metrics(emb["z_speech"], emb["z_image"], emb["caption_image"])
    emb = embed_split(template, params, source, with_maps=True, **kwargs)
    return retrieval.retrieval_metrics_from_scores(score_matrix(emb, similarity), emb["caption_image"])


def flat_scalars(results: dict, *, prefix: str) -> dict[str, float]:
    """{"speech_to_image": {"r10": x}} -> {"<prefix>/speech_to_image_r10": x}."""
    return {
        f"{prefix}/{direction}_{name}": float(value)
        for direction, values in results.items()
        for name, value in values.items()
    }


def format_results(results: dict) -> str:
    return retrieval.format_table(results)


def restore_model(
    workdir: str, checkpoint: str | int = "latest"
) -> tuple[int, ml_collections.ConfigDict, dual_encoder.Template, dict]:
    """(step, saved config, template of a freshly built model, restored params) from `workdir`.

    The template's `initial_params` are the model at random initialisation (`config.seed`); its
    `merge` uses the checkpoint's model state (BatchNorm statistics, VQ codebooks) by default.
    """
    ckpt = checkpointing.Checkpointer(workdir, read_only=True)
    try:
        config = ml_collections.ConfigDict(ckpt.restore_config(checkpoint))
        step, restored, restored_state = ckpt.restore_model_variables(checkpoint)
    finally:
        ckpt.close()
    model = dual_encoder.build_dual_encoder(
        config.model,
        num_features=audio_features.num_features(config.features.recipe),
        rngs=nnx.Rngs(config.seed),
    )
    template = dual_encoder.Template(model)
    where = f"Checkpoint step {step} in {workdir}"
    params = checkpointing.fit_tree(template.initial_params, restored, where=where).tree
    model_state = checkpointing.fit_tree(template.initial_model_state, restored_state, where=where).tree
    return step, config, template.with_model_state(model_state), params


def evaluate_checkpoint(
    workdir: str, *, checkpoint: str | int = "latest", split: str = "test", batch_size: int | None = None
) -> tuple[int, ml_collections.ConfigDict, dict]:
    """Restores a checkpoint and its saved config from `workdir` and scores retrieval on `split`.

    Returns (step, config, results) with results as in `retrieval.retrieval_metrics`.
    """
    step, config, template, params = restore_model(workdir, checkpoint)
    data = config.dataset
    source = input_pipeline.open_config_split(data, split)
    results = evaluate_split(
        template,
        params,
        source,
        batch_size=batch_size or config.eval_batch_size,
        featurize=functools.partial(audio_features.compute, recipe=config.features.recipe),
        features_config=config.features,
        pad_value=audio_features.pad_value(config.features.recipe),
        image_key=data.image_key,
        mesh=input_pipeline.data_mesh(),
        similarity=config.model.get("similarity", "cosine"),
    )
    return step, config, results
