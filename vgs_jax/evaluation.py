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
from vgs_jax.models import dual_encoder


@functools.cache
def _embed_fn(template: dual_encoder.Template) -> Callable:
    @jax.jit
    def embed(params, audio, audio_mask, image):
        return template.merge(params)(audio, audio_mask, image)

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
) -> dict[str, np.ndarray]:
    """Embeds every example of `source`.

    Returns:
      dict with z_speech [N, E] (one row per caption, source order), z_image [M, E] (unique
      images, first-seen order), caption_image [N] (row of z_image for each caption),
      image_id [M] and caption_id [N].
    """
    batch_size = -(-batch_size // mesh.size) * mesh.size  # a multiple of the device count
    embed = _embed_fn(template)
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
        z_speech, z_image = embed(
            params, sharded["audio"], sharded["audio_mask"], sharded[image_key]
        )
        valid = _to_host(sharded["example_mask"])
        speech.append(_to_host(z_speech)[valid])
        image.append(_to_host(z_image)[valid])
        image_ids.append(_to_host(sharded["image_id"])[valid])
        caption_ids.append(_to_host(sharded["caption_id"])[valid])
    speech, image = np.concatenate(speech), np.concatenate(image)
    image_ids = np.concatenate(image_ids)
    unique_ids, first, inverse = np.unique(image_ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # first-seen order
    rank_of = np.empty_like(order)
    rank_of[order] = np.arange(len(order))
    return {
        "z_speech": speech,
        "z_image": image[first[order]],
        "caption_image": rank_of[inverse],
        "image_id": unique_ids[order],
        "caption_id": np.concatenate(caption_ids),
    }


def evaluate_split(template, params, source, **kwargs) -> dict:
    """Retrieval metrics (both directions) of the model on `source`; kwargs as in `embed_split`."""
    emb = embed_split(template, params, source, **kwargs)
    return retrieval.retrieval_metrics(emb["z_speech"], emb["z_image"], emb["caption_image"])


def flat_scalars(results: dict, *, prefix: str) -> dict[str, float]:
    """{"speech_to_image": {"r10": x}} -> {"<prefix>/speech_to_image_r10": x}."""
    return {
        f"{prefix}/{direction}_{name}": float(value)
        for direction, values in results.items()
        for name, value in values.items()
    }


def format_results(results: dict) -> str:
    return retrieval.format_table(results)


def _path_names(path) -> tuple[str, ...]:
    # Orbax restores without a target turn list indices into string keys: compare by name.
    return tuple(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def fit_params(expected, restored, *, where: str):
    """`restored` leaves arranged in the tree structure of `expected` (pure dicts of arrays).

    Raises CheckpointError naming the parameters that are missing, extra or of another shape.
    """
    flat = {_path_names(p): v for p, v in jax.tree_util.tree_leaves_with_path(restored)}
    paths, treedef = jax.tree_util.tree_flatten_with_path(expected)
    wanted = {_path_names(p): np.shape(v) for p, v in paths}
    bad = sorted(
        "/".join(name)
        for name in set(wanted) | set(flat)
        if name not in flat or name not in wanted or np.shape(flat[name]) != wanted[name]
    )
    if bad:
        raise checkpointing.CheckpointError(
            f"{where} does not fit the model of its saved config; mismatched parameters: "
            f"{bad[:8]}{' ...' if len(bad) > 8 else ''}."
        )
    return jax.tree_util.tree_unflatten(treedef, [flat[_path_names(p)] for p, _ in paths])


def restore_model(
    workdir: str, checkpoint: str | int = "latest"
) -> tuple[int, ml_collections.ConfigDict, dual_encoder.Template, dict]:
    """(step, saved config, template of a freshly built model, restored params) from `workdir`.

    The template's `initial_params` are the model at random initialisation (`config.seed`).
    """
    ckpt = checkpointing.Checkpointer(workdir, read_only=True)
    try:
        config = ml_collections.ConfigDict(ckpt.restore_config(checkpoint))
        step, restored = ckpt.restore_params(checkpoint)
    finally:
        ckpt.close()
    model = dual_encoder.build_dual_encoder(
        config.model,
        num_features=audio_features.num_features(config.features.recipe),
        rngs=nnx.Rngs(config.seed),
    )
    template = dual_encoder.Template(model)
    params = fit_params(
        template.initial_params, restored, where=f"Checkpoint step {step} in {workdir}"
    )
    return step, config, template, params


def evaluate_checkpoint(
    workdir: str, *, checkpoint: str | int = "latest", split: str = "test", batch_size: int | None = None
) -> tuple[int, ml_collections.ConfigDict, dict]:
    """Restores a checkpoint and its saved config from `workdir` and scores retrieval on `split`.

    Returns (step, config, results) with results as in `retrieval.retrieval_metrics`.
    """
    step, config, template, params = restore_model(workdir, checkpoint)
    data = config.dataset
    source = input_pipeline.open_split(data.name, split, data_dir=data.data_dir)
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
    )
    return step, config, results
