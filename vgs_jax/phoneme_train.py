"""Trains and scores Gelderloos & Chrupała (2016): phoneme strings -> image vectors by MSE.

    python -m vgs_jax.phoneme_train --config=configs/shapes_gelderloos2016.py --workdir=runs/shapes_gelderloos2016
    python -m vgs_jax.analyze --workdir=runs/shapes_gelderloos2016

The model reads text turned into phonemes (`vgs_jax.phonemes`), not audio, so it has this small loop
instead of `train`'s (no resumable checkpoints: a run restarts from scratch). Scores on
config.dataset.eval_split, for the trained model, the same model at random initialisation and the
mean predictor (the training images' mean vector for every caption): MSE against the standardised
image vectors, and caption -> image / image -> caption retrieval by the cosine of predicted and true
image vectors (R@1, R@10; chance from `segment_train.chance_r10`). Writes `<workdir>/results.json`,
and the final parameters (`params.npz`) with what rebuilds the model (`phoneme_run.json`: config, phoneme
vocabulary, image standardisation) for `vgs_jax.analyze`.
"""
import json
import os

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from vgs_jax import cli
from vgs_jax import config_lib
from vgs_jax import data_sources
from vgs_jax import phoneme_data
from vgs_jax import phonemes
from vgs_jax import retrieval
from vgs_jax.models.phoneme_gru import PhonemeGRU
from vgs_jax.objectives.losses import mse_regression_loss
from vgs_jax.segment_train import chance_r10

SYSTEM = "gelderloos2016"
RUN_FILE = "phoneme_run.json"
PARAMS_FILE = "params.npz"


def load_data(config):
    """(train, evaluation) PhonemeSplits of `config` (max_*_captions: the first N; 0: all)."""
    d = config.dataset

    def split(name, limit):
        source = data_sources.open_split(d.name, name, data_dir=d.data_dir, build_if_missing=d.build_if_missing)
        return phoneme_data.load_split(source, config.image_vector, limit or None)

    return split("train", d.max_train_captions), split(d.eval_split, d.max_eval_captions)


def build_model(config, vocab_size: int, out_dim: int, seed: int | None = None) -> PhonemeGRU:
    m = config.model
    return PhonemeGRU(vocab_size, out_dim, embed_dim=m.embed_dim, hidden=m.hidden, depth=m.depth,
                      rngs=nnx.Rngs(config.seed if seed is None else seed))


@nnx.jit
def _predict(model, ids, mask):
    return model(ids, mask)


def predict(model, ids: np.ndarray, mask: np.ndarray, batch: int = 256) -> np.ndarray:
    """Predicted image vectors [N, D] of phoneme ids [N, T]."""
    return np.concatenate([np.asarray(_predict(model, jnp.asarray(ids[i:i + batch]), jnp.asarray(mask[i:i + batch])))
                           for i in range(0, len(ids), batch)])


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def score(pred: np.ndarray, targets: np.ndarray, caption_image: np.ndarray) -> dict:
    """Predictions [N, D] vs standardised image vectors [M, D]: MSE to each caption's image, and retrieval."""
    out = retrieval.retrieval_metrics(_unit(pred), _unit(targets), caption_image)
    out["mse"] = float(np.mean(np.square(pred - targets[caption_image])))
    return out


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, data=None) -> dict:
    """Trains for config.num_train_steps; returns (and writes) {"trained", "random_init", "mean_predictor",
    "chance_r10", "steps"}. `data`: (train, evaluation) PhonemeSplits when already loaded by `load_data`."""
    if config.get("system") != SYSTEM:
        raise ValueError(f"config.system must be {SYSTEM!r} (configs/shapes_gelderloos2016.py); got "
                         f"{config.get('system')!r}.")
    if config.num_train_steps < 1 or config.batch_size < 1:
        raise ValueError(f"num_train_steps ({config.num_train_steps}) and batch_size ({config.batch_size}) "
                         "must be >= 1.")
    train, test = data or load_data(config)
    vocab = phonemes.Vocabulary.build(train.phonemes)
    mean, sd = phoneme_data.standardiser(train.images)
    ids, mask = vocab.encode(train.phonemes)
    targets = ((train.images - mean) / sd).astype(np.float32)[train.caption_image]
    test_ids, test_mask = vocab.encode(test.phonemes)
    test_targets = ((test.images - mean) / sd).astype(np.float32)
    model = build_model(config, len(vocab), targets.shape[1])
    evaluate = lambda m: score(predict(m, test_ids, test_mask), test_targets, test.caption_image)
    random_init = evaluate(model)
    mean_mse = float(np.mean(np.square(test_targets[test.caption_image])))  # the mean predictor predicts 0
    optimizer = nnx.Optimizer(model, optax.chain(optax.clip_by_global_norm(config.max_norm), optax.adam(config.lr)),
                              wrt=nnx.Param)

    @nnx.jit
    def step(m, opt, x, x_mask, y):
        loss, grads = nnx.value_and_grad(lambda m: mse_regression_loss(m(x, x_mask), y))(m)
        opt.update(m, grads)
        return loss

    rng = np.random.default_rng(config.seed)
    b = min(config.batch_size, len(ids))
    for i in range(1, config.num_train_steps + 1):
        idx = rng.choice(len(ids), b, replace=False)
        loss = step(model, optimizer, jnp.asarray(ids[idx]), jnp.asarray(mask[idx]), jnp.asarray(targets[idx]))
        if i % config.log_every_steps == 0 or i == config.num_train_steps:
            print(f"step {i}/{config.num_train_steps}  loss {float(loss):.4f}", flush=True)
    results = {"system": SYSTEM, "steps": config.num_train_steps, "trained": evaluate(model),
               "random_init": random_init, "mean_predictor": {"mse": mean_mse},
               "chance_r10": chance_r10(test.caption_image, len(test.image_id))}
    save_run(workdir, config, model, vocab, mean, sd)
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(format_results(results), flush=True)
    return results


def save_run(workdir: str, config, model: PhonemeGRU, vocab: phonemes.Vocabulary, mean, sd) -> None:
    os.makedirs(workdir, exist_ok=True)
    leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
    np.savez(os.path.join(workdir, PARAMS_FILE), *[np.asarray(x) for x in leaves])
    with open(os.path.join(workdir, RUN_FILE), "w") as f:
        json.dump({"system": SYSTEM, "config": config.to_dict(), "vocabulary": list(vocab.symbols),
                   "image_mean": np.asarray(mean).tolist(), "image_std": np.asarray(sd).tolist()}, f)


def is_run(workdir: str) -> bool:
    """Whether `workdir` holds a phoneme_train run (rather than a `main` run)."""
    return os.path.exists(os.path.join(workdir, RUN_FILE))


def load_run(workdir: str, *, random_init: bool = False):
    """(model, vocabulary, config) of a finished run; `random_init`: the same model before training."""
    with open(os.path.join(workdir, RUN_FILE)) as f:
        run = json.load(f)
    config = ml_collections.ConfigDict(run["config"])
    vocab = phonemes.Vocabulary(tuple(run["vocabulary"]))
    model = build_model(config, len(vocab), len(run["image_mean"]))
    if not random_init:
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        saved = np.load(os.path.join(workdir, PARAMS_FILE))
        leaves = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        if len(leaves) != len(jax.tree.leaves(params)):
            raise ValueError(f"{workdir}/{PARAMS_FILE} holds {len(leaves)} arrays but the config's model has "
                             f"{len(jax.tree.leaves(params))}; the run's files do not match each other.")
        model = nnx.merge(graphdef, jax.tree.unflatten(jax.tree.structure(params), leaves), rest)
    return model, vocab, config


def format_results(results: dict) -> str:
    t, r, c = results["trained"], results["random_init"], results["chance_r10"]
    lines = [f"{results['system']} after {results['steps']} steps: trained / random init / baseline",
             f"test MSE           {t['mse']:.4f} / {r['mse']:.4f} / {results['mean_predictor']['mse']:.4f} (mean predictor)"]
    for d in ("speech_to_image", "image_to_speech"):
        lines.append(f"{d:18s} R@10 {100 * t[d]['r10']:5.1f} / {100 * r[d]['r10']:5.1f} / {100 * c[d]:5.1f} (chance)"
                     f"   R@1 {100 * t[d]['r1']:5.1f} / {100 * r[d]['r1']:5.1f}   n {int(t[d]['n'])}")
    return "\n".join(lines)


FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
    config_lib.define_config_flag("config", "configs/shapes_gelderloos2016.py[:tiny].")
    flags.DEFINE_string("workdir", None, "Directory for results.json, phoneme_run.json and params.npz.")
    flags.mark_flags_as_required(["config", "workdir"])
    cli.run(main)
