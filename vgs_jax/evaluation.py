"""Scoring cross-modal retrieval of a trained dual encoder on a split, and restoring checkpoints.

Shared by the training loop (periodic validation) and the `evaluate` binary, so the two cannot
drift apart. Every caption of the split is a query; images are de-duplicated by `image_id` in
first-seen order (an image with 5 spoken captions is embedded once in the image list). The
embeddings come from `inference.embed_split`; the similarity is the model's (`template.similarity`).
"""

import functools

from flax import nnx
import ml_collections
import numpy as np

from vgs_jax import audio_features
from vgs_jax import ceiling
from vgs_jax import checkpointing
from vgs_jax import data_sources
from vgs_jax import inference
from vgs_jax import input_pipeline
from vgs_jax import retrieval
from vgs_jax.objectives import similarity as similarity_lib
from vgs_jax.models import dual_encoder
from vgs_jax.multilingual import model as ml_model

SCORE_BLOCK = 512
"""Captions scored per call when retrieval uses a matchmap similarity (a [512, M] block of scores)."""
MATCHMAP_PAIRS_CHUNK = 64
"""Pairs per side of one matchmap block in evaluation (memory ~ 64^2 * cells * frames floats)."""


def score_matrix(emb: dict, similarity: str) -> np.ndarray:
    """float32 [N, M] caption x image scores of `inference.embed_split(..., with_maps=True)`'s output."""
    image = {"embedding": emb["z_image"], "map": emb["image_map"], "map_mask": emb["image_map_mask"]}
    blocks = []
    for start in range(0, len(emb["z_speech"]), SCORE_BLOCK):
        rows = slice(start, start + SCORE_BLOCK)
        speech = {"embedding": emb["z_speech"][rows], "map": emb["speech_map"][rows],
                  "map_mask": emb["speech_map_mask"][rows]}
        blocks.append(np.asarray(similarity_lib.similarity_matrix(speech, image, similarity,
                                                                  chunk_size=MATCHMAP_PAIRS_CHUNK)))
    return np.concatenate(blocks)


def evaluate_split(template, params, source, *, consistent: dict | None = None, **kwargs) -> dict:
    """Retrieval metrics (both directions) of the model on `source` under its similarity
    (`template.similarity`; cosine: from embeddings; matchmap similarities: from the full score
    matrix). kwargs (batch_size, features_config, image_key, mesh, optional featurizer) as in
    `inference.embed_split`. consistent: {caption_id: image ids the caption is true of} (see
    `ceiling.read_consistent`); when given, results also hold "ceiling" (`ceiling.ceiling_metrics`)."""
    return evaluate_and_embed(template, params, source, consistent=consistent, **kwargs)[0]


def evaluate_and_embed(template, params, source, *, consistent: dict | None = None, **kwargs) -> tuple[dict, dict]:
    """(`evaluate_split`'s results, the `inference.embed_split` output they were scored from), so a caller
    that needs the embeddings too ("z_speech" [N, E], ...) does not embed the split again."""
    similarity = template.similarity
    if similarity == "cosine":
        emb = inference.embed_split(template, params, source, **kwargs)
        results = retrieval.retrieval_metrics(emb["z_speech"], emb["z_image"], emb["caption_image"])
        top = ceiling.top_images(emb["z_speech"], emb["z_image"]) if consistent is not None else None
    else:
        emb = inference.embed_split(template, params, source, with_maps=True, **kwargs)
        scores = score_matrix(emb, similarity)
        results = retrieval.retrieval_metrics_from_scores(scores, emb["caption_image"])
        top = ceiling.top_images(scores=scores) if consistent is not None else None
    if consistent is not None:
        ids = [consistent[int(c)] for c in emb["caption_id"]]
        results["ceiling"] = ceiling.ceiling_metrics(ids, emb["caption_image"], emb["image_id"], top)
    return results, emb


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
    num_features = audio_features.num_features(config.features.recipe)
    model = (ml_model.build_model(config, num_features=num_features, rngs=nnx.Rngs(config.seed))
             if config.get("multilingual") else
             dual_encoder.build_dual_encoder(config.model, num_features=num_features, rngs=nnx.Rngs(config.seed)))
    template = dual_encoder.Template(model)
    where = f"Checkpoint step {step} in {workdir}"
    params = checkpointing.fit_tree(template.initial_params, restored, where=where).tree
    model_state = checkpointing.fit_tree(template.initial_model_state, restored_state, where=where).tree
    return step, config, template.with_model_state(model_state), params


def evaluate_checkpoint(
    workdir: str, *, checkpoint: str | int = "latest", split: str = "test", batch_size: int | None = None
) -> tuple[int, ml_collections.ConfigDict, dict]:
    """Restores a checkpoint and its saved config from `workdir` and scores retrieval on `split`.

    Returns (step, config, results) with results as in `retrieval.retrieval_metrics`, plus
    "ceiling" when the split stores consistent image ids (`ceiling`); multilingual runs: as in
    `vgs_jax.multilingual.evaluation` (per language and cross-lingual).
    """
    step, config, template, params = restore_model(workdir, checkpoint)
    data = config.dataset
    source = data_sources.open_config_split(data, split)
    if config.get("multilingual"):
        from vgs_jax.multilingual import evaluation as ml_evaluation  # pylint: disable=import-outside-toplevel
        # (imported here: it builds on this module)
        split_fn = functools.partial(ml_evaluation.evaluate_split, ml_config=config.multilingual)
    else:
        split_fn = evaluate_split
    results = split_fn(
        template,
        params,
        source,
        consistent=ceiling.read_consistent(source),
        batch_size=batch_size or config.eval_batch_size,
        features_config=config.features,
        image_key=data.image_key,
        mesh=input_pipeline.data_mesh(),
    )
    return step, config, results
