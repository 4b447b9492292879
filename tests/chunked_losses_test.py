"""Ring-chunked losses (vgs_jax.objectives.chunked) equal the plain ones on 8 forced CPU devices:
value and gradients w.r.t. both embedding matrices, with padding, uneven image ids and masks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

from vgs_jax import config_lib
from vgs_jax.objectives import chunked
from vgs_jax.objectives import losses
from vgs_jax.objectives import registry
from vgs_jax.objectives import similarity

_BATCH = 16  # two rows per device


def _mesh():
    assert jax.device_count() == 8
    return Mesh(np.array(jax.devices()), ("data",))


def _case(case, seed=0, batch=_BATCH):
    rng = np.random.default_rng(seed)
    zs = rng.normal(size=(batch, 5)).astype(np.float32)
    zi = rng.normal(size=(batch, 5)).astype(np.float32)
    if case == "plain":
        return zs, zi, None, None
    ids = np.sort(rng.integers(0, batch // 3, batch)).astype(np.int32)  # uneven: 1..several per image
    mask = rng.random(batch) < 0.75
    mask[[0, 9]] = False
    return zs, zi, jnp.asarray(ids), jnp.asarray(mask)


def _assert_same(got, want):
    (got_v, got_g), (want_v, want_g) = got, want
    assert float(got_v) == pytest.approx(float(want_v), rel=2e-6, abs=1e-7)
    for g, w in zip(got_g, want_g):
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=2e-5, atol=2e-7)


_EMBEDDING = {
    "platalea_hinge": (losses.platalea_hinge_loss, chunked.chunked_platalea_hinge_loss, {"margin": 0.9}),
    "hardest_negative_hinge": (losses.hardest_negative_hinge_loss, chunked.chunked_hardest_negative_hinge_loss,
                               {"margin": 0.9}),
    "infonce": (losses.infonce_loss, chunked.chunked_infonce_loss, {}),
}


@pytest.mark.parametrize("name,case", [(name, "ids_mask") for name in sorted(_EMBEDDING)] + [("infonce", "plain")])
def test_embedding_losses_chunked_equal_plain(name, case):
    plain, ring, kw = _EMBEDDING[name]
    zs, zi, ids, mask = _case(case)
    mesh = _mesh()
    # infonce: a traced temperature, differentiated too
    t = jnp.float32(0.3)
    with_t = lambda fn, **extra: (lambda a, b, t: fn(a, b, image_ids=ids, mask=mask, **kw, **extra,
                                                     **({"temperature": t} if name == "infonce" else {})))
    args = (0, 1, 2) if name == "infonce" else (0, 1)
    want = jax.value_and_grad(with_t(plain), argnums=args)(zs, zi, t)
    got = jax.jit(jax.value_and_grad(with_t(ring, mesh=mesh), argnums=args))(zs, zi, t)
    _assert_same(got, want)


_SIMILARITY = {
    "sampled_impostor_hinge": (losses.sampled_impostor_hinge_loss, chunked.chunked_sampled_impostor_hinge_loss,
                               {}),
    "semihard_hinge_quirk": (losses.semihard_hinge_loss, chunked.chunked_semihard_hinge_loss,
                             {"reference_quirk": True}),
}


@pytest.mark.parametrize("name", sorted(_SIMILARITY))
def test_similarity_losses_chunked_equal_plain_cosine(name):
    """Same key, same impostors; unit-norm embeddings scored by their dot product; padding rows.
    (semihard_hinge without the quirk: the matchmap test below.)"""
    plain, ring, kw = _SIMILARITY[name]
    zs, zi, _, mask = _case("ids_mask", seed=1)
    zs, zi = (np.asarray(similarity.l2_normalize(z)) for z in (zs, zi))
    key = jax.random.key(7)

    def want_fn(a, b):
        sim = similarity.similarity_matrix({"embedding": a}, {"embedding": b}, "cosine")
        return plain(sim, key, margin=0.5, mask=mask, **kw)

    def got_fn(a, b):
        return ring({"embedding": a}, {"embedding": b}, key, mesh=_mesh(), margin=0.5, mask=mask, **kw)

    _assert_same(jax.jit(jax.value_and_grad(got_fn, argnums=(0, 1)))(zs, zi),
                 jax.value_and_grad(want_fn, argnums=(0, 1))(zs, zi))


def test_semihard_chunked_equals_plain_on_matchmaps():
    """A matchmap similarity (MISA): the ring scores caption blocks against image blocks of maps."""
    rng = np.random.default_rng(3)
    speech = {"embedding": rng.normal(size=(_BATCH, 4)).astype(np.float32),
              "map": rng.normal(size=(_BATCH, 5, 4)).astype(np.float32),
              "map_mask": jnp.asarray(np.arange(5)[None, :] < rng.integers(2, 6, (_BATCH, 1)))}
    image = {"embedding": rng.normal(size=(_BATCH, 4)).astype(np.float32),
             "map": rng.normal(size=(_BATCH, 2, 2, 4)).astype(np.float32),
             "map_mask": jnp.ones((_BATCH, 2, 2), bool)}
    key = jax.random.key(2)

    def want_fn(sm, im):
        sim = similarity.similarity_matrix(dict(speech, map=sm), dict(image, map=im), "MISA")
        return losses.semihard_hinge_loss(sim, key, margin=1.0)

    def got_fn(sm, im):
        return chunked.chunked_semihard_hinge_loss(dict(speech, map=sm), dict(image, map=im), key, mesh=_mesh(),
                                                   similarity_name="MISA", margin=1.0)

    _assert_same(jax.jit(jax.value_and_grad(got_fn, argnums=(0, 1)))(speech["map"], image["map"]),
                 jax.value_and_grad(want_fn, argnums=(0, 1))(speech["map"], image["map"]))


def _sample_impostors_quadratic(rng, mask):
    """The former O(B^2) draw: the u-th allowed column of a B x B mask."""
    batch = mask.shape[0]
    allowed = mask[None, :] & ~jnp.eye(batch, dtype=bool) & mask[:, None]
    choices = jnp.sum(allowed, axis=1, dtype=jnp.int32)
    rank = jnp.cumsum(mask, dtype=jnp.int32) - 1
    keys = jax.vmap(lambda r: jax.random.fold_in(rng, r))(rank)
    u = jax.vmap(lambda k, n: jax.random.randint(k, (), 0, jnp.maximum(n, 1)))(keys, choices)
    idx = jnp.argmax(jnp.cumsum(allowed, axis=1, dtype=jnp.int32) > u[:, None], axis=1)
    return jnp.where(choices > 0, idx.astype(jnp.int32), jnp.arange(batch, dtype=jnp.int32))


def test_sample_impostors_linear_memory_draws_equal_the_quadratic_ones():
    rng = np.random.default_rng(0)
    linear, quadratic = jax.jit(losses.sample_impostors), jax.jit(_sample_impostors_quadratic)
    for seed, p in enumerate([1.0, 0.7, 0.3, 0.05]):
        mask = jnp.asarray(rng.random(40) < p)
        key = jax.random.key(seed)
        np.testing.assert_array_equal(linear(key, mask), quadratic(key, mask))


def test_ring_errors_are_clear():
    zs, zi, _, _ = _case("plain", batch=12)
    with pytest.raises(ValueError, match="not divisible"):
        chunked.chunked_platalea_hinge_loss(zs, zi, mesh=_mesh())
    with pytest.raises(ValueError, match="no axis 'batch'"):
        chunked.chunked_infonce_loss(zs[:8], zi[:8], temperature=0.1, mesh=_mesh(), axis="batch")
    with pytest.raises(ValueError, match="temperature must be positive"):
        chunked.chunked_infonce_loss(zs[:8], zi[:8], temperature=0.0, mesh=_mesh())
    with pytest.raises(ValueError, match=r"lack \['map', 'map_mask'\]"):
        chunked.chunked_semihard_hinge_loss({"embedding": zs[:8]}, {"embedding": zi[:8]}, jax.random.key(0),
                                            mesh=_mesh(), similarity_name="MISA")


def test_registry_chunked_flag(monkeypatch):
    config = config_lib.load_config("configs/shapes_gru.py:tiny,v1")
    for name, objective in registry.OBJECTIVES.items():
        assert objective.chunked_fn is not None, name
    config.loss.chunked = True
    with pytest.raises(ValueError, match="needs the device mesh"):
        registry.make_loss_fn(config.loss, config.model)
    plain = registry.OBJECTIVES["platalea_hinge"]
    monkeypatch.setitem(registry.OBJECTIVES, "platalea_hinge",
                        registry.Objective(plain.fn, plain.inputs, config_fields=("margin",), image_ids=True))
    with pytest.raises(ValueError, match="no ring-chunked version; set loss.chunked=False"):
        registry.make_loss_fn(config.loss, config.model, _mesh())


def test_registry_loss_fn_chunked_equals_plain():
    """make_loss_fn passes the towers' output dicts (extra keys such as vq outputs are ignored) to
    the chunked similarity loss, with the mesh; same loss and gradients as the plain one."""
    config = config_lib.load_config("configs/shapes_gru.py:tiny,v1")
    config.unlock()
    config.loss.name = "semihard_hinge"
    zs, zi, _, mask = _case("ids_mask", seed=5)
    zs, zi = (np.asarray(similarity.l2_normalize(z)) for z in (zs, zi))
    batch = {"example_mask": mask, "image_id": jnp.arange(_BATCH)}
    results = []
    for ring in (False, True):
        config.loss.chunked = ring
        loss_fn = registry.make_loss_fn(config.loss, config.model, _mesh())
        fn = lambda a, b: loss_fn(None, {"embedding": a, "vq_stats": {}}, {"embedding": b}, batch,
                                  jax.random.key(1))[0]
        results.append(jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))(zs, zi))
    _assert_same(results[1], results[0])
