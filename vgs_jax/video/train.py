"""Trains a video grounding model on `moving_shapes` and scores clip retrieval.

    python -m vgs_jax.video.train --config=configs/moving_shapes_avlnet.py --workdir=runs/ms_avlnet
    python -m vgs_jax.evaluate --workdir=runs/ms_avlnet

`config.video.model` is "boggust" (Boggust et al. 2019: DAVEnet audio tower and a pixel CNN on one
still frame per audio fragment, picked by `config.video.strategy`, see `sampling`; DAVEnet's
sampled-impostor hinge) or "avlnet" (ResDAVEnet audio tower, `encoders.VideoEncoder` on all the
fragment's frames, masked margin softmax). Both are `models.dual_encoder.DualEncoder`s, so the
checkpoint (`checkpointing`, state {"step", "params", "model_state", "opt_state"}) restores with
`evaluation.restore_model`. No resumption: a run takes minutes and restarts from scratch. The
trained model and the same model at random initialisation are scored on config.dataset.eval_split;
results go to `<workdir>/results.json`.
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

from vgs_jax import audio_features
from vgs_jax import checkpointing
from vgs_jax import cli
from vgs_jax import config_lib
from vgs_jax import retrieval
from vgs_jax.models import dual_encoder
from vgs_jax.objectives.losses import sampled_impostor_hinge_loss
from vgs_jax.video import evaluation as video_evaluation
from vgs_jax.video import sampling
from vgs_jax.video.loss import masked_margin_softmax_loss

LOSSES = ("sampled_impostor_hinge", "mms")


def video_config(model: str, *, tiny: bool, episodes: bool, strategy: str) -> ml_collections.ConfigDict:
    """Shared fields of configs/moving_shapes_boggust.py and moving_shapes_avlnet.py (each then sets
    config.model and config.loss): data (clips or episodes, tiny or small), features, schedule."""
    sampling.check_strategy(strategy)
    c = ml_collections.ConfigDict()
    c.seed = 0
    size = "tiny" if tiny else "small"
    c.dataset = ml_collections.ConfigDict(dict(
        name=f"moving_shapes/{'episodes' if episodes else 'clips'}_{size}", data_dir=config_lib.default_data_dir(),
        build_if_missing=True, eval_split="test", max_train_examples=0, max_eval_examples=0))  # 0: all
    c.features = ml_collections.ConfigDict(dict(recipe="davenet_logmel"))
    # fragment_seconds 0: a clip is one fragment; episodes: fragments_per_example of 3 s each.
    c.video = ml_collections.ConfigDict(dict(model=model, strategy=strategy, image_size=32 if tiny else 64,
                                             fragment_seconds=3.0 if episodes else 0.0, fragments_per_example=16))
    c.model = ml_collections.ConfigDict()
    c.loss = ml_collections.ConfigDict()
    c.lr = 1e-3
    c.batch_size = 8 if tiny else 32
    c.eval_batch_size = 8 if tiny else 50
    c.num_train_steps = 4 if tiny else 2000
    c.log_every_steps = 2 if tiny else 100
    return c


def _objective(config):
    name = config.loss.name
    if name == "sampled_impostor_hinge":
        return lambda sim, key: sampled_impostor_hinge_loss(sim, key, margin=config.loss.margin)
    if name == "mms":
        return lambda sim, key: masked_margin_softmax_loss(sim, margin=config.loss.margin,
                                                           temperature=config.loss.temperature)
    raise ValueError(f"config.loss.name must be one of {LOSSES}; got {name!r}.")


def _batches(config, frags, rng):
    """Endless (features, mask, visual) batches of distinct fragments; boggust draws a still frame per
    fragment by config.video.strategy, avlnet takes all frames."""
    mask = frags.mask
    if len(frags) < config.batch_size:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {len(frags)} training fragments.")
    while True:
        idx = rng.choice(len(frags), config.batch_size, replace=False)
        visual = (frags.still_frames(idx, config.video.strategy, rng) if config.video.model == "boggust"
                  else frags.video[idx])
        yield frags.features[idx], mask[idx], visual


def make_train_step(template: dual_encoder.Template, tx: optax.GradientTransformation, objective):
    """A jitted (state, features, mask, visual, key) -> (state, loss) on the pure train state."""

    def loss_fn(params, model_state, feats, mask, visual, key):
        model = template.merge(params, model_state, train=True)
        za = model.encode_speech(feats, mask, key=key)["embedding"]
        zv = model.encode_image(visual)["embedding"]
        return objective(za @ zv.T, key), template.model_state_of(model)

    @jax.jit
    def step(state, feats, mask, visual, key):
        (loss, model_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state["params"], state["model_state"], feats, mask, visual, key)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        return {"step": state["step"] + 1, "params": optax.apply_updates(state["params"], updates),
                "model_state": model_state, "opt_state": opt_state}, loss

    return step


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains for config.num_train_steps, saves the final checkpoint, and returns (and writes) clip
    retrieval on config.dataset.eval_split: {"trained", "random_init", "steps", "model", "strategy"}."""
    if config.get("video") is None or config.video.get("model") not in video_evaluation.MODELS:
        raise ValueError("config.video.model must be one of "
                         f"{video_evaluation.MODELS} (configs/moving_shapes_boggust.py, moving_shapes_avlnet.py).")
    if config.num_train_steps < 1 or config.batch_size < 2:
        raise ValueError(f"num_train_steps ({config.num_train_steps}) must be >= 1 and batch_size "
                         f"({config.batch_size}) >= 2.")
    objective = _objective(config)
    with checkpointing.Checkpointer(workdir, read_only=True) as ckpt:
        if ckpt.latest_step() is not None:
            raise ValueError(f"{workdir} already holds a video run (checkpoint step {ckpt.latest_step()}); runs do not "
                             "resume: pass a new --workdir or delete that one.")
    train = video_evaluation.load_fragments(config, "train", strategy=config.video.strategy,
                                            per_example=config.video.fragments_per_example, seed=config.seed,
                                            limit=config.dataset.max_train_examples or None)
    test = video_evaluation.eval_fragments(config, config.dataset.eval_split)
    model = dual_encoder.build_dual_encoder(config.model, num_features=audio_features.num_features(
        config.features.recipe), rngs=nnx.Rngs(config.seed))
    template = dual_encoder.Template(model)
    score = lambda params, model_state: video_evaluation.clip_retrieval(
        template.with_model_state(model_state), params, config.video.model, test, config.eval_batch_size)
    random_init = score(template.initial_params, template.initial_model_state)
    tx = optax.adam(config.lr)
    state = {"step": jnp.zeros((), jnp.int32), "params": template.initial_params,
             "model_state": template.initial_model_state, "opt_state": tx.init(template.initial_params)}
    step = make_train_step(template, tx, objective)
    batches = _batches(config, train, np.random.default_rng(config.seed))
    key = jax.random.key(config.seed)
    for i in range(1, config.num_train_steps + 1):
        state, loss = step(state, *next(batches), jax.random.fold_in(key, i))
        if i % config.log_every_steps == 0 or i == config.num_train_steps:
            print(f"step {i}/{config.num_train_steps}  loss {float(loss):.4f}", flush=True)
    with checkpointing.Checkpointer(workdir) as ckpt:
        ckpt.save(config.num_train_steps, state, data_state={}, config=config.to_dict())
    results = {"model": config.video.model, "strategy": config.video.strategy, "steps": config.num_train_steps,
               "trained": score(state["params"], state["model_state"]), "random_init": random_init}
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(format_results(results), flush=True)
    return results


def format_results(results: dict) -> str:
    """The trained model's retrieval table, then R@1/5/10 of random init and chance per direction."""
    t, r = results["trained"], results["random_init"]
    lines = [f"{results['model']} ({results['strategy']}) after {results['steps']} steps "
             "(speech_to_image = audio -> video):", retrieval.format_table(t)]
    for d in retrieval.DIRECTIONS:
        lines.append(f"{d}: random init R@1/5/10 " + " / ".join(f"{100 * r[d][k]:.1f}" for k in ("r1", "r5", "r10"))
                     + "; chance " + " / ".join(f"{100 * t['chance'][k]:.1f}" for k in ("r1", "r5", "r10")))
    return "\n".join(lines)


FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
    config_lib.define_config_flag("config", "configs/moving_shapes_boggust.py or moving_shapes_avlnet.py[:tiny].")
    flags.DEFINE_string("workdir", None, "Directory for the checkpoint and results.json.")
    flags.mark_flags_as_required(["config", "workdir"])
    cli.run(main)
