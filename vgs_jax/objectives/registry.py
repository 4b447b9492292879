"""The objectives a config trains with (`config.loss.name`), each declaring what it reads.

`OBJECTIVES` is the one table of trainable losses. An `Objective` says what the loss scores
(`EMBEDDINGS`: the towers' L2-normalised pooled embeddings, so model.similarity must be "cosine";
`SIMILARITY`: the caption x image matrix of `similarity.similarity_matrix` under
model.similarity), whether it takes a PRNG key, which learned scalars of the model it uses
(temperature, logit bias) and which config.loss fields it reads. `make_loss_fn` binds a config to
its entry; nothing else dispatches on the loss name. `LOSSES` / `SIMILARITY_LOSSES` are views of
the table by call signature, for calling the functions directly.
"""

import dataclasses
from typing import Callable

import jax
import ml_collections

from vgs_jax.objectives import chunked
from vgs_jax.objectives import losses
from vgs_jax.objectives import masked_prediction
from vgs_jax.objectives import sigmoid
from vgs_jax.objectives import similarity
from vgs_jax.objectives import tags

EMBEDDINGS = "embeddings"
SIMILARITY = "similarity"
TAGS = "tags"  # the towers' unnormalised outputs ("logits") and batch["keyword_targets"]
TEMPERATURE_MODES = (None, "divide", "multiply")


@dataclasses.dataclass(frozen=True)
class Objective:
    """A trainable loss and the inputs it declares.

    Attributes:
      fn: the loss, a float32 scalar. inputs=EMBEDDINGS: fn(z_speech [B, E], z_image [B, E], *,
        mask, ...); inputs=SIMILARITY: fn(sim [B, B], [key,] *, mask, ...).
      inputs: EMBEDDINGS or SIMILARITY.
      takes_key: fn takes a jax.random key after its score input (sampled impostors).
      temperature: how fn takes the model's learned temperature t: None (it does not), "divide"
        (`temperature=t`, logits S / t: InfoNCE) or "multiply" (`temperature=1 / t`: SigLIP).
      logit_bias: fn takes the model's learned logit bias as `bias` (needs model.logit_bias_init).
      config_fields: config.loss fields passed to fn as keyword arguments of the same name.
      image_ids: fn takes `image_ids`; config.loss.exclude_same_image=True passes
        batch["image_id"] (captions of one image are not each other's negatives), else None.
      chunked_fn: the device-ring version of fn (`vgs_jax.objectives.chunked`; extra `mesh=`
        argument), used when config.loss.chunked is True. For inputs=SIMILARITY it takes the
        towers' output dicts instead of the matrix (and `similarity_name`, `chunk_size`), so no
        device forms the B x B matrix.
    """

    fn: Callable[..., jax.Array]
    inputs: str
    takes_key: bool = False
    temperature: str | None = None
    logit_bias: bool = False
    config_fields: tuple[str, ...] = ()
    image_ids: bool = False
    chunked_fn: Callable[..., jax.Array] | None = None

    def __post_init__(self):
        if self.inputs not in (EMBEDDINGS, SIMILARITY, TAGS):
            raise ValueError(f"Objective.inputs must be {EMBEDDINGS!r}, {SIMILARITY!r} or {TAGS!r}; got {self.inputs!r}.")
        if self.temperature not in TEMPERATURE_MODES:
            raise ValueError(f"Objective.temperature must be one of {TEMPERATURE_MODES}; got {self.temperature!r}.")

    @property
    def loss_fields(self) -> tuple[str, ...]:
        """Every config.loss field this objective reads besides `name`."""
        return (self.config_fields + (("exclude_same_image",) if self.image_ids else ())
                + (("chunked",) if self.chunked_fn is not None else ()))


OBJECTIVES: dict[str, Objective] = {
    "platalea_hinge": Objective(losses.platalea_hinge_loss, EMBEDDINGS, config_fields=("margin",),
                                image_ids=True, chunked_fn=chunked.chunked_platalea_hinge_loss),
    "hardest_negative_hinge": Objective(losses.hardest_negative_hinge_loss, EMBEDDINGS,
                                        config_fields=("margin",), image_ids=True,
                                        chunked_fn=chunked.chunked_hardest_negative_hinge_loss),
    "infonce": Objective(losses.infonce_loss, EMBEDDINGS, temperature="divide", image_ids=True,
                         chunked_fn=chunked.chunked_infonce_loss),
    "sigmoid": Objective(sigmoid.sigmoid_loss, EMBEDDINGS, temperature="multiply", logit_bias=True,
                         image_ids=True, chunked_fn=sigmoid.chunked_sigmoid_loss),
    "sampled_impostor_hinge": Objective(losses.sampled_impostor_hinge_loss, SIMILARITY, takes_key=True,
                                        config_fields=("margin",),
                                        chunked_fn=chunked.chunked_sampled_impostor_hinge_loss),
    "semihard_hinge": Objective(losses.semihard_hinge_loss, SIMILARITY, takes_key=True,
                                config_fields=("margin", "reference_quirk"),
                                chunked_fn=chunked.chunked_semihard_hinge_loss),
    "visual_tags": Objective(tags.visual_tag_loss, TAGS, config_fields=("oracle_tagger",),
                             chunked_fn=tags.visual_tag_loss_on_mesh),
}

LOSSES: dict[str, Callable[..., jax.Array]] = {
    name: o.fn for name, o in OBJECTIVES.items() if o.inputs == EMBEDDINGS and not o.logit_bias}
"""Embedding losses fn(z_speech, z_image, *, image_ids, mask, margin | temperature) by name."""

SIMILARITY_LOSSES: dict[str, Callable[..., jax.Array]] = {
    name: o.fn for name, o in OBJECTIVES.items() if o.inputs == SIMILARITY}
"""Similarity-matrix losses fn(sim [B, B], rng, *, margin, mask) by name."""


def _lookup(table: dict, name: str, error: str):
    try:
        return table[name]
    except (KeyError, TypeError):
        raise ValueError(error) from None


def get_objective(name: str) -> Objective:
    """The entry of OBJECTIVES called `name` (a config.loss.name); ValueError listing them if none."""
    return _lookup(OBJECTIVES, name, f"Unknown loss.name {name!r}; choose one of {sorted(OBJECTIVES)}.")


def get_loss(name: str) -> Callable[..., jax.Array]:
    """Returns the embedding loss called `name` (a key of LOSSES)."""
    return _lookup(LOSSES, name, f"unknown loss {name!r}; choose one of {sorted(LOSSES)} (similarity-matrix "
                                 f"losses: get_similarity_loss, {sorted(SIMILARITY_LOSSES)}).")


def get_similarity_loss(name: str) -> Callable[..., jax.Array]:
    """Returns the sim-matrix loss called `name`: fn(sim [B, B], rng, *, margin, mask)."""
    return _lookup(SIMILARITY_LOSSES, name,
                   f"unknown similarity loss {name!r}; choose one of {sorted(SIMILARITY_LOSSES)}.")


def _check_config(name: str, objective: Objective, loss_config: ml_collections.ConfigDict,
                  model_config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None) -> None:
    """ValueError if the model or mesh cannot provide what `objective` declares it needs."""
    sim_name = model_config.get("similarity", "cosine")
    if objective.inputs == EMBEDDINGS and sim_name != "cosine":
        raise ValueError(
            f"loss.name={name!r} scores L2-normalised embeddings, but model.similarity={sim_name!r}; use "
            f"similarity='cosine', or a similarity-matrix loss: {sorted(SIMILARITY_LOSSES)}.")
    if objective.logit_bias and model_config.get("logit_bias_init") is None:
        raise ValueError(f"loss.name={name!r} needs a learned logit bias: set model.logit_bias_init "
                         "(SigLIP: -10.0, with model.temperature_init=0.1, i.e. t = 10).")
    if loss_config.get("chunked", False):
        if objective.chunked_fn is None:
            raise ValueError(f"loss.name={name!r} has no ring-chunked version; set loss.chunked=False.")
        if mesh is None:
            raise ValueError("loss.chunked=True needs the device mesh.")


def make_loss_fn(loss_config: ml_collections.ConfigDict, model_config: ml_collections.ConfigDict,
                 mesh: jax.sharding.Mesh | None = None) -> Callable[..., tuple[jax.Array, dict]]:
    """Binds the config's objective: fn(model, speech, image, batch, key) -> (loss, metrics).

    `speech` / `image` are the dual encoder's output dicts and `key` a jax.random key; the entry of
    OBJECTIVES named by loss_config.name says which of them (and of the model's learned scalars
    and the config's fields) the loss gets. A VQ commitment loss, when the speech tower has
    quantisers, is added to the total, and with loss_config.ssl_weight > 0 that weight times HuBERT's
    masked-prediction term (`masked_prediction.ssl_loss`, its masks drawn from `key`). Metrics:
    retrieval_loss, vq_loss and, per quantiser, perplexity and usage; ssl_loss, ssl_accuracy,
    ssl_masked_fraction.
    """
    name = loss_config.name
    objective = get_objective(name)
    _check_config(name, objective, loss_config, model_config, mesh)
    ssl_weight = loss_config.get("ssl_weight", 0.0)
    if ssl_weight:
        masked_prediction.check_config(loss_config, model_config)
    sim_name = model_config.get("similarity", "cosine")
    chunk = model_config.get("matchmap_chunk", 0) or None

    def retrieval_loss(model, speech, image, batch, key):
        kwargs = {field: loss_config[field] for field in objective.config_fields}
        kwargs["mask"] = batch["example_mask"]
        if objective.image_ids:
            kwargs["image_ids"] = batch["image_id"] if loss_config.exclude_same_image else None
        if objective.temperature == "divide":
            kwargs["temperature"] = model.temperature
        elif objective.temperature == "multiply":
            kwargs["temperature"] = 1.0 / model.temperature
        if objective.logit_bias:
            kwargs["bias"] = model.logit_bias[...]
        ring = objective.chunked_fn is not None and loss_config.chunked
        if objective.inputs == EMBEDDINGS:
            args = (speech["embedding"], image["embedding"])
        elif objective.inputs == TAGS:
            args = tags.tag_inputs(speech, image, batch)
        elif ring:
            args = (speech, image)
            kwargs.update(similarity_name=sim_name, chunk_size=chunk)
        else:
            args = (similarity.similarity_matrix(speech, image, sim_name, chunk_size=chunk),)
        if objective.takes_key:
            args += (key,)
        if ring:
            return objective.chunked_fn(*args, mesh=mesh, **kwargs)
        return objective.fn(*args, **kwargs)

    def loss_fn(model, speech, image, batch, key):
        loss = retrieval_loss(model, speech, image, batch, key)
        metrics = {"retrieval_loss": loss}
        if "vq_loss" in speech:
            metrics["vq_loss"] = speech["vq_loss"]
            for quant, stats in speech["vq_stats"].items():
                metrics[f"{quant}_perplexity"] = stats["perplexity"]
                metrics[f"{quant}_usage"] = stats["usage"]
            loss = loss + speech["vq_loss"]
        if ssl_weight:
            ssl, ssl_metrics = masked_prediction.ssl_loss(
                model, batch, jax.random.fold_in(key, 1), mask_prob=loss_config.mask_prob,
                mask_length=loss_config.mask_length, temperature=loss_config.ssl_temperature)
            metrics.update(ssl_metrics)
            loss = loss + ssl_weight * ssl
        return loss, metrics

    return loss_fn
