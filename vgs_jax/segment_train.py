"""Trains and scores the survey's early word-region systems on `segment_view` data.

    python -m vgs_jax.segment_train --config=configs/shapes_hg2015.py --workdir=runs/shapes_hg2015

`config.system` is "hg2015" (Harwath & Glass 2015: eq. (3) fragment scores, eq. (2) hinge over the
batch; caption -> image and image -> caption R@N by `retrieval`) or "synnaeve2014" (Synnaeve et al.
2014: coscos² on (word segment, object crop) pairs; word -> fragment and fragment -> word precision
at 1 and 10, where a hit is a fragment whose object the word names). These systems read word
segments and regions, not utterances, so they have this small loop instead of `train`'s (no
checkpoints: a run takes seconds to minutes and restarts from scratch). Every score is reported for
the trained model, the same model at random initialisation and the random-ranking baseline;
results go to `<workdir>/results.json`.
"""
import dataclasses
import json
import os

from absl import app
from absl import flags
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from vgs_jax import audio_features
from vgs_jax import cli
from vgs_jax import config_lib
from vgs_jax import configs
from vgs_jax import data_sources
from vgs_jax import retrieval
from vgs_jax import segment_view
from vgs_jax.models.fragment_embedders import HG2015Embedder, Synnaeve2014Embedder
from vgs_jax.objectives.losses import coscos2_loss
from vgs_jax.objectives.score_hinge import all_negatives_hinge_loss

SYSTEMS = ("hg2015", "synnaeve2014")
SCORE_CHUNK = 128
"""Caption/image pairs per side of one eq. (3) block when scoring a whole split."""


def segment_config(system: str, *, tiny: bool, v1: bool = False, v2: bool = False) -> ml_collections.ConfigDict:
    """Shared fields of configs/shapes_hg2015.py and shapes_synnaeve2014.py (each then sizes its model);
    `v1`/`v2` pin the spoken_shapes version (`configs.spoken_shapes_name`)."""
    c = ml_collections.ConfigDict()
    c.system = system
    c.seed = 0
    c.dataset = ml_collections.ConfigDict(dict(
        name=configs.spoken_shapes_name(tiny=tiny, v1=v1, v2=v2), data_dir=config_lib.default_data_dir(),
        build_if_missing=True, eval_split="test", max_train_captions=0, max_eval_captions=0))  # 0: all
    c.features = ml_collections.ConfigDict(dict(recipe="logmel"))
    # Objects per image: 1-3 in spoken_shapes 1.0.0, 1-6 in 2.0.0.
    c.segments = ml_collections.ConfigDict(dict(frames=12, crop_size=12, max_words=24, max_objects=3 if v1 else 6))
    c.model = ml_collections.ConfigDict(dict(embed_dim=64, hidden=128))
    c.loss = ml_collections.ConfigDict(dict(margin=1.0))
    c.lr = 1e-3
    c.batch_size = 8 if tiny else 64
    c.num_train_steps = 6 if tiny else 2000
    c.log_every_steps = 2 if tiny else 200
    return c


def _load(config, split: str, limit: int | None) -> segment_view.SegmentSplit:
    source = data_sources.open_split(config.dataset.name, split, data_dir=config.dataset.data_dir,
                                     build_if_missing=config.dataset.build_if_missing)
    s = config.segments
    return segment_view.load_split(source, audio_features.Featurizer.from_recipe(config.features.recipe),
                                   frames=s.frames, size=s.crop_size, max_words=s.max_words,
                                   max_objects=s.max_objects, system=config.system, limit=limit)


def _standardise(train: segment_view.SegmentSplit, test: segment_view.SegmentSplit):
    """Copies of both splits with words at zero mean, unit variance per dimension and regions at zero
    mean, by the train split's valid entries."""
    w = train.words[train.word_mask]
    mu, sd = w.mean(0), w.std(0) + 1e-6
    r_mu = train.regions[train.region_mask].mean(0)
    return tuple(dataclasses.replace(
        s, words=np.where(s.word_mask[..., None], (s.words - mu) / sd, 0.0).astype(np.float32),
        regions=np.where(s.region_mask[..., None], s.regions - r_mu, 0.0).astype(np.float32)) for s in (train, test))


def load_data(config) -> tuple[segment_view.SegmentSplit, segment_view.SegmentSplit]:
    """(train, evaluation) splits of `config` as segments: the first config.dataset.max_train_captions
    training captions and max_eval_captions of config.dataset.eval_split (0: all)."""
    return (_load(config, "train", config.dataset.max_train_captions or None),
            _load(config, config.dataset.eval_split, config.dataset.max_eval_captions or None))


class _Tokens:
    """A split's word tokens and object fragments, flat, with their concept ids (-1: none)."""

    def __init__(self, split: segment_view.SegmentSplit, concepts: dict):
        n, w = np.nonzero(split.word_mask)
        self.words = split.words[n, w]
        self.word_concept = np.asarray([concepts.get(split.word_concepts[i][j], -1) for i, j in zip(n, w)])
        m, r = np.nonzero(split.region_mask[:, 1:])
        self.fragments = split.regions[m, r + 1]
        self.fragment_hot = np.zeros((len(m), len(concepts)), bool)
        for k, (i, j) in enumerate(zip(m, r)):
            self.fragment_hot[k, [concepts[c] for c in split.region_concepts[i][j + 1]]] = True
        self.word_image = split.caption_image[n]
        self.fragment_image = m

    def same(self, wi, fi) -> np.ndarray:
        """Word token wi names fragment fi's shape or colour (type level), elementwise."""
        cid = self.word_concept[wi]
        return (cid >= 0) & self.fragment_hot[fi, np.maximum(cid, 0)]


def _concept_ids() -> dict:
    from tfds_builders.spoken_shapes import scenes  # deferred: the label names of spoken_shapes

    names = [("shape", s) for s in scenes.SHAPES] + [("color", c) for c in scenes.COLORS]
    return {c: i for i, c in enumerate(names)}


def precision_at(cos: np.ndarray, relevant: np.ndarray, ks=(1, 10)) -> dict:
    """Queries [Q, C] scores, relevant [Q, C] bool -> {"p@k": mean fraction of relevant in the top k
    (stable descending order), "random_p@k": its expectation under a random ranking, "n": Q}."""
    order = np.argsort(-cos, axis=1, kind="stable")
    hits = np.take_along_axis(relevant, order, axis=1)
    out = {f"p@{k}": float(hits[:, :k].mean()) for k in ks}
    out.update({f"random_p@{k}": float(relevant.mean(axis=1).mean()) for k in ks})
    out["n"] = int(cos.shape[0])
    return out


def _synnaeve_batch(tokens: _Tokens, positives: np.ndarray, rng, b: int):
    """b/2 (word, fragment) pairs where the word names the fragment's object in its own image, b/2
    random pairs; `same` labels by concept."""
    pos = positives[rng.integers(len(positives), size=b // 2)]
    wi = np.concatenate([pos[:, 0], rng.integers(len(tokens.words), size=b - b // 2)])
    fi = np.concatenate([pos[:, 1], rng.integers(len(tokens.fragments), size=b - b // 2)])
    return tokens.words[wi], tokens.fragments[fi], tokens.same(wi, fi)


def _positives(tokens: _Tokens) -> np.ndarray:
    by_image: dict[int, list[int]] = {}
    for f, image in enumerate(tokens.fragment_image):
        by_image.setdefault(int(image), []).append(f)
    pairs = [(w, f) for w in np.nonzero(tokens.word_concept >= 0)[0]
             for f in by_image.get(int(tokens.word_image[w]), ()) if tokens.same(w, f)]
    if not pairs:
        raise ValueError("synnaeve2014: no word in the training captions names an object of its image; "
                         "check the corpus's word alignments and object labels.")
    return np.asarray(pairs)


def _score_synnaeve(model, tokens: _Tokens) -> dict:
    grounded = tokens.word_concept >= 0
    cos = np.asarray(model.cosines(jnp.asarray(tokens.words), jnp.asarray(tokens.fragments)))
    relevant = tokens.same(np.arange(len(tokens.words))[:, None], np.arange(len(tokens.fragments))[None, :])
    return {"word_to_fragment": precision_at(cos[grounded], relevant[grounded]),
            "fragment_to_word": precision_at(cos.T, relevant.T)}


def _score_hg2015(model, split: segment_view.SegmentSplit) -> dict:
    scores = nnx.jit(lambda m, *a: m.score_matrix(*a, chunk_size=SCORE_CHUNK))(
        model, jnp.asarray(split.words), jnp.asarray(split.word_mask), jnp.asarray(split.regions),
        jnp.asarray(split.region_mask))
    results = retrieval.retrieval_metrics_from_scores(np.asarray(scores), split.caption_image)
    results["chance_r10"] = chance_r10(split.caption_image, len(split.image_id))
    return results


def chance_r10(caption_image: np.ndarray, num_images: int) -> dict:
    """Expected R@10 of a random ranking: speech -> image 10 / M; image -> speech, per image with c of
    the N captions, 1 - C(N - c, 10) / C(N, 10) (some own caption in the top 10), averaged."""
    n = len(caption_image)
    counts = np.bincount(caption_image, minlength=num_images)
    miss = [np.prod([(n - c - j) / (n - j) for j in range(min(10, n))]) for c in counts]
    return {"speech_to_image": min(1.0, 10 / num_images), "image_to_speech": float(1.0 - np.mean(miss))}


def _build(config, train: segment_view.SegmentSplit, rngs: nnx.Rngs):
    if config.system == "hg2015":
        return HG2015Embedder(train.words.shape[-1], train.regions.shape[-1], embed_dim=config.model.embed_dim,
                              hidden=config.model.hidden, rngs=rngs)
    return Synnaeve2014Embedder(train.words.shape[-1], train.regions.shape[-1], hidden=config.model.hidden,
                                embed_dim=config.model.embed_dim, rngs=rngs)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, data=None) -> dict:
    """Trains `config.system` for config.num_train_steps and returns (and writes) its scores on
    config.dataset.eval_split: {"trained": ..., "random_init": ..., "steps": N}. `data`: the
    (train, evaluation) splits when already loaded by `load_data`."""
    if config.get("system") not in SYSTEMS:
        raise ValueError(f"config.system must be one of {SYSTEMS} (configs/shapes_hg2015.py, "
                         f"configs/shapes_synnaeve2014.py); got {config.get('system')!r}.")
    if config.num_train_steps < 1 or config.batch_size < 2:
        raise ValueError(f"num_train_steps ({config.num_train_steps}) must be >= 1 and batch_size "
                         f"({config.batch_size}) >= 2.")
    train, test = _standardise(*(data or load_data(config)))
    model = _build(config, train, nnx.Rngs(config.seed))
    rng = np.random.default_rng(config.seed)
    if config.system == "hg2015":
        score = lambda m: _score_hg2015(m, test)
        image_ids = train.image_id[train.caption_image]

        def loss_fn(m, words, word_mask, regions, region_mask, ids):
            sim = m.score_matrix(words, word_mask, regions, region_mask)
            return all_negatives_hinge_loss(sim, margin=config.loss.margin, image_ids=ids)

        def batches():
            idx = rng.choice(len(train.caption_image), config.batch_size, replace=False)
            img = train.caption_image[idx]
            return tuple(map(jnp.asarray, (train.words[idx], train.word_mask[idx], train.regions[img],
                                           train.region_mask[img], image_ids[idx])))

    else:
        concepts = _concept_ids()
        tokens, test_tokens = _Tokens(train, concepts), _Tokens(test, concepts)
        positives = _positives(tokens)
        score = lambda m: _score_synnaeve(m, test_tokens)
        loss_fn = lambda m, w, f, same: coscos2_loss(m.word(w), m.fragment(f), same)
        batches = lambda: tuple(map(jnp.asarray, _synnaeve_batch(tokens, positives, rng, config.batch_size)))
    random_init = score(model)
    optimizer = nnx.Optimizer(model, optax.adam(config.lr), wrt=nnx.Param)

    @nnx.jit
    def step(m, opt, *batch):
        loss, grads = nnx.value_and_grad(loss_fn)(m, *batch)
        opt.update(m, grads)
        return loss

    for i in range(1, config.num_train_steps + 1):
        loss = step(model, optimizer, *batches())
        if i % config.log_every_steps == 0 or i == config.num_train_steps:
            print(f"step {i}/{config.num_train_steps}  loss {float(loss):.4f}", flush=True)
    results = {"system": config.system, "steps": config.num_train_steps, "trained": score(model),
               "random_init": random_init}
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(format_results(results), flush=True)
    return results


def format_results(results: dict) -> str:
    """One line per direction and score: trained / random init / random baseline (or chance)."""
    t, r = results["trained"], results["random_init"]
    lines = [f"{results['system']} after {results['steps']} steps: trained / random init / baseline"]
    if results["system"] == "hg2015":
        for d in ("speech_to_image", "image_to_speech"):
            lines.append(f"{d:18s} R@10 {100 * t[d]['r10']:5.1f} / {100 * r[d]['r10']:5.1f} / "
                         f"{100 * t['chance_r10'][d]:5.1f}"
                         f"   R@1 {100 * t[d]['r1']:5.1f} / {100 * r[d]['r1']:5.1f}   n {int(t[d]['n'])}")
    else:
        for d in ("word_to_fragment", "fragment_to_word"):
            lines.append(f"{d:18s} " + "   ".join(
                f"P@{k} {100 * t[d][f'p@{k}']:5.1f} / {100 * r[d][f'p@{k}']:5.1f} / {100 * t[d][f'random_p@{k}']:5.1f}"
                for k in (1, 10)) + f"   n {t[d]['n']}")
    return "\n".join(lines)


FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
    config_lib.define_config_flag("config", "configs/shapes_hg2015.py or configs/shapes_synnaeve2014.py[:tiny].")
    flags.DEFINE_string("workdir", None, "Directory for results.json.")
    flags.mark_flags_as_required(["config", "workdir"])
    cli.run(main)
