"""The multilingual loss: a weighted sum of ranking terms over language-image and language-language pairs.

`config.multilingual` fields read here:

    weights: {"<A>_image": w, "<A>_<B>": w, ...}   one term per entry (Harwath et al. 2018a: English-image,
             Hindi-image and English-Hindi); A, B in `languages`; weight 0 drops the term
    pair_expansion: bool   Ohishi et al. 2020a: in A-B terms every caption of the same image in the other
             language is a positive (`expanded_positives`), not only the parallel one; `expanded_hinge_loss`

Each term is the configured objective (`config.loss`, through `objectives.registry.make_loss_fn`): a
language-image term scores that language's speech outputs against the image outputs under
`model.similarity`; a language-language term scores the two languages' pooled embeddings under the cosine
(a matchmap similarity compares image maps with frame maps, not two frame maps). `loss_fn` encodes every
language but the first (the train step encodes `batch["audio"]`, the first language) from
`batch["audio_<language>"]` / `batch["audio_mask_<language>"]` (`vgs_jax.multilingual.data`).
"""

import jax
import jax.numpy as jnp
import ml_collections

from vgs_jax.multilingual import model as ml_model
from vgs_jax.objectives import losses
from vgs_jax.objectives import pairs
from vgs_jax.objectives import registry

IMAGE = "image"


def parse_terms(ml_config, languages: tuple[str, ...]) -> tuple[tuple[str, str, float], ...]:
    """((A, B or "image", weight), ...) of config.multilingual.weights with weight > 0, in its order;
    ValueError naming a bad entry."""
    terms = []
    for name, weight in dict(ml_config.weights).items():
        a, _, b = name.partition("_")
        ok = a in languages and (b == IMAGE or (b in languages and b != a))
        if not ok or not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"config.multilingual.weights.{name}={weight!r}: entries are '<A>_image' or "
                             f"'<A>_<B>' with A != B in languages {languages}, weights >= 0.")
        if weight > 0:
            terms.append((a, b, float(weight)))
    if not terms:
        raise ValueError("config.multilingual.weights has no term with weight > 0; give e.g. "
                         f"{{'{languages[0]}_image': 1.0}}.")
    return tuple(terms)


def expanded_positives(image_ids, mask) -> jax.Array:
    """bool [B, B]: (i, j) is a positive A-B pair under pair expansion: both rows valid, same image."""
    valid = pairs.valid_mask(jnp.shape(image_ids)[0], mask)
    ids = jnp.asarray(image_ids)
    return valid[:, None] & valid[None, :] & (ids[:, None] == ids[None, :])


def expanded_hinge_loss(z_a, z_b, *, image_ids, margin=0.2, mask=None) -> jax.Array:
    """platalea's hinge with every same-image pair a positive (pair expansion), float32 scalar.

    For each positive (i, p) (`expanded_positives`) and each k whose image differs:
    max(0, m + S[i, k] - S[i, p]) (A caption i vs wrong B caption k) + max(0, m + S[k, p] - S[i, p])
    (B caption p vs wrong A caption k), summed and divided by B * P (B valid rows, P positive pairs).
    With one positive per row (distinct images) it is `losses.platalea_hinge_loss`.
    """
    batch = pairs.check_pair(z_a, z_b)
    pos = expanded_positives(image_ids, mask)
    valid, neg = pairs.pair_masks(batch, image_ids, mask)
    sim = losses.cosine_similarity_matrix(z_a, z_b)
    p = sim[:, :, None]                                   # [i, p, k]: S[i, p]
    cost_a = jax.nn.relu(margin + sim[:, None, :] - p)    # S[i, k] - S[i, p]
    cost_b = jax.nn.relu(margin + sim.T[None, :, :] - p)  # S[k, p] - S[i, p]
    total = jnp.sum(jnp.where(pos[:, :, None] & neg[:, None, :], cost_a, 0.0)
                    + jnp.where(pos[:, :, None] & neg.T[None, :, :], cost_b, 0.0))
    return total / (pairs.count(valid) * jnp.maximum(jnp.sum(pos), 1))


def make_loss_fn(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None):
    """fn(model, speech, image, batch, key) -> (loss, metrics), the train step's loss contract
    (`objectives.registry.make_loss_fn`); metrics: retrieval_loss (the weighted sum) and loss_<A>_<B> per term."""
    ml = config.multilingual
    languages = ml_model.check_languages(ml)
    terms = parse_terms(ml, languages)
    objective = registry.get_objective(config.loss.name)
    if objective.inputs == registry.TAGS:
        raise ValueError(f"loss.name={config.loss.name!r} trains keyword tags, not ranking; multilingual models "
                         f"need a ranking loss: {sorted(registry.LOSSES)} or {sorted(registry.SIMILARITY_LOSSES)}.")
    expansion = bool(ml.pair_expansion)
    if expansion and config.loss.name != "platalea_hinge":
        raise ValueError(f"config.multilingual.pair_expansion=True is implemented for loss.name='platalea_hinge' "
                         f"(expanded_hinge_loss); got {config.loss.name!r}. Set pair_expansion=False or change the "
                         "loss.")
    image_fn = registry.make_loss_fn(config.loss, config.model, mesh)
    cosine_model = ml_collections.ConfigDict(config.model.to_dict())
    cosine_model.similarity = "cosine"
    speech_fn = registry.make_loss_fn(config.loss, cosine_model, mesh)

    def loss_fn(model, speech, image, batch, key):
        keys = jax.random.split(key, len(languages) + len(terms))
        out = {languages[0]: speech}
        for i, language in enumerate(languages[1:], 1):
            out[language] = model.encode_speech(batch[f"audio_{language}"], batch[f"audio_mask_{language}"],
                                                key=keys[i], language=language)
        total, metrics = 0.0, {}
        for j, (a, b, weight) in enumerate(terms):
            k = keys[len(languages) + j]
            if b == IMAGE:
                value = image_fn(model, out[a], image, batch, k)[1]["retrieval_loss"]
            elif expansion:
                value = expanded_hinge_loss(out[a]["embedding"], out[b]["embedding"], image_ids=batch["image_id"],
                                            margin=config.loss.margin, mask=batch["example_mask"])
            else:
                value = speech_fn(model, out[a], {"embedding": out[b]["embedding"]}, batch, k)[1]["retrieval_loss"]
            metrics[f"loss_{a}_{b}"] = value
            total = total + weight * value
        metrics["retrieval_loss"] = total
        return total, metrics

    return loss_fn
