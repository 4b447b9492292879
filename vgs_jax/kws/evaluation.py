"""Keyword spotting by a trained visual-tag model (`configs/shapes_kws.py`) on a split.

Every utterance of the split is scored for every keyword by the speech tower's logit; per keyword
the utterances are ranked and scored (`kws.metrics`) against exact relevance (the keyword is spoken)
and semantic relevance (the image shows it), see `kws.keywords`. Two reference systems are scored
the same way: "random" (uniform scores, seed 0) and "oracle_bow" (1 where the transcript holds the
keyword: the bag of words a perfect recogniser would give). Utterances whose image shows a keyword
that they do not say are listed, the model's highest-scored first ("disagreements"). The visual
tagger itself (the image tower's logits) ranks the split's images per keyword against semantic
relevance ("tagger", beside random image scores): it says whether the tagger or the speech model
falls short.
"""
import numpy as np
from jax.experimental import multihost_utils

from vgs_jax import audio_features
from vgs_jax import data_sources
from vgs_jax import evaluation
from vgs_jax import inference
from vgs_jax import input_pipeline
from vgs_jax.kws import keywords as keywords_lib
from vgs_jax.kws import metrics

SYSTEMS = ("model", "random", "oracle_bow")
RELEVANCE = ("exact", "semantic")


def speech_logits(template, params, source, *, batch_size: int, features_config, image_key: str, mesh) -> np.ndarray:
    """float32 [N, V]: the speech tower's keyword logits of every example of `source`, in source order."""
    featurizer = audio_features.Featurizer.from_recipe(features_config.recipe)
    rows = []
    for batch in input_pipeline.make_eval_batches(
            source, batch_size=batch_size, featurizer=featurizer, max_frames=features_config.max_frames,
            bucket_boundaries=features_config.bucket_boundaries, image_key=image_key):
        sharded = input_pipeline.shard_batch(batch, mesh)
        out = inference.encode_speech(template, params, sharded["audio"], sharded["audio_mask"], keys=("logits",))
        if "logits" not in out:
            raise ValueError("Keyword spotting needs a pooled speech tower with keyword logits (e.g. "
                             "speech_encoder='kamper_cnn'); this model's speech tower outputs a frame map.")
        gather = lambda x: np.asarray(multihost_utils.process_allgather(x, tiled=True))
        rows.append(gather(out["logits"])[gather(sharded["example_mask"])])
    return np.concatenate(rows).astype(np.float32)


def image_logits(template, params, images: np.ndarray, *, batch_size: int) -> np.ndarray:
    """float32 [M, V]: the visual tagger's (image tower's) keyword logits of images (pixels or vectors) [M, ...]."""
    return np.concatenate([
        np.asarray(inference.encode_image(template, params, images[lo:lo + batch_size], keys=("logits",))["logits"])
        for lo in range(0, len(images), batch_size)]).astype(np.float32)


def tagger_spotting(logits: np.ndarray, shown: np.ndarray, names: list[str]) -> dict:
    """{"model", "random": `metrics.keyword_metrics`} of images ranked per keyword by the tagger's
    logits [M, V] (and by uniform scores, seed 0) against shown [M, V] bool."""
    return {"model": metrics.keyword_metrics(logits, shown, names),
            "random": metrics.keyword_metrics(np.random.default_rng(0).random(logits.shape), shown, names)}


def _annotations(source, keywords) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, np.ndarray]:
    """(spoken [N, V] bool, shown [N, V] bool, caption texts, caption ids, image ids) of every example;
    caption-word vocabularies are shown by the image's captions (`keywords.image_relevance`)."""
    by_image = any(k.kind == "word" for k in keywords)
    spoken, shown, texts, ids, images = [], [], [], [], []
    for i in range(len(source)):
        ex = source[i]
        spoken.append(keywords_lib.spoken(ex, keywords))
        if not by_image:
            shown.append(keywords_lib.shown(ex, keywords))
        texts.append(" ".join(keywords_lib.transcript_words(ex)))
        ids.append(int(ex["caption_id"]))
        images.append(int(ex["image_id"]))
    spoken = np.stack(spoken)
    shown = keywords_lib.image_relevance(spoken, images) if by_image else np.stack(shown)
    return spoken, shown, texts, np.asarray(ids), np.asarray(images)


def disagreements(scores, spoken, shown, texts, caption_ids, names, limit: int) -> dict:
    """Counts of (utterance, keyword) pairs where exact and semantic relevance differ, and up to `limit`
    shown-but-not-spoken pairs, the model's highest-scored first (one per keyword)."""
    shown_only, spoken_only = shown & ~spoken, spoken & ~shown
    examples = []
    for v, name in enumerate(names):
        rows = np.flatnonzero(shown_only[:, v])
        if rows.size:
            rank = metrics.ranking(scores[:, v])
            position = np.empty_like(rank)
            position[rank] = np.arange(len(rank))
            best = rows[np.argmin(position[rows])]
            examples.append({"keyword": name, "caption_id": int(caption_ids[best]), "text": texts[best],
                             "model_rank": int(position[best]) + 1, "logit": float(scores[best, v])})
    examples.sort(key=lambda e: e["model_rank"])
    return {"shown_not_spoken": int(shown_only.sum()), "spoken_not_shown": int(spoken_only.sum()),
            "examples": examples[:limit]}


def keyword_spotting(scores: np.ndarray, spoken: np.ndarray, shown: np.ndarray, texts: list[str],
                     caption_ids: np.ndarray, names: list[str], *, limit: int = 5) -> dict:
    """{system: {"exact" | "semantic": `metrics.keyword_metrics`}} for SYSTEMS, plus "disagreements"."""
    systems = {"model": scores, "random": np.random.default_rng(0).random(scores.shape),
               "oracle_bow": spoken.astype(np.float32)}
    results = {name: {"exact": metrics.keyword_metrics(s, spoken, names),
                      "semantic": metrics.keyword_metrics(s, shown, names)} for name, s in systems.items()}
    results["disagreements"] = disagreements(scores, spoken, shown, texts, caption_ids, names, limit)
    return results


def evaluate_checkpoint(workdir: str, *, checkpoint: str | int = "latest", split: str = "test",
                        batch_size: int | None = None) -> dict:
    """`keyword_spotting` of the checkpoint's speech model on `split` (its config must have `kws`)."""
    _, config, template, params = evaluation.restore_model(workdir, checkpoint)
    if not config.get("kws"):
        raise ValueError(f"The run in {workdir} was not trained for keyword spotting (its config has no `kws` "
                         "section); train one from configs/shapes_kws.py.")
    keywords = keywords_lib.vocabulary(config)
    source = data_sources.open_config_split(config.dataset, split)
    batch_size = batch_size or config.eval_batch_size
    scores = speech_logits(template, params, source, batch_size=batch_size, features_config=config.features,
                           image_key=config.dataset.image_key, mesh=input_pipeline.data_mesh())
    spoken, shown, texts, caption_ids, image_ids = _annotations(source, keywords)
    names = [k.name for k in keywords]
    results = keyword_spotting(scores, spoken, shown, texts, caption_ids, names)
    _, first = np.unique(image_ids, return_index=True)  # one row per image
    images = np.stack([np.asarray(source[int(i)][config.dataset.image_key]) for i in first])
    results["tagger"] = tagger_spotting(image_logits(template, params, images, batch_size=batch_size),
                                        shown[first], names)
    return results


def format_results(results: dict) -> str:
    """The table of `keyword_spotting`'s averages (%) and the disagreement examples."""
    lines = ["keyword spotting  relevance  P@10%  P@N%  EER%  keywords"]
    for system in SYSTEMS:
        for relevance in RELEVANCE:
            m = results[system][relevance]
            lines.append(f"{system:<17} {relevance:<9} {100 * m['p_at_10']:6.1f} {100 * m['p_at_n']:5.1f} "
                         f"{100 * m['eer']:5.1f} {m['keywords_scored']:9d}")
    for system, m in results.get("tagger", {}).items():
        lines.append(f"{'tagger/' + system:<17} {'images':<9} {100 * m['p_at_10']:6.1f} {100 * m['p_at_n']:5.1f} "
                     f"{100 * m['eer']:5.1f} {m['keywords_scored']:9d}")
    d = results["disagreements"]
    lines.append(f"exact vs semantic: {d['shown_not_spoken']} (utterance, keyword) pairs shown but not spoken, "
                 f"{d['spoken_not_shown']} spoken but not shown; e.g. (model rank for the keyword):")
    lines += [f"  {e['keyword']!r} #{e['model_rank']}: {e['text']!r}" for e in d["examples"]]
    return "\n".join(lines)
