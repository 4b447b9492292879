"""`model.dtype="bfloat16"` is a mixed-precision policy: the compiled train step multiplies in
bfloat16, while parameters, optimiser state and the loss stay float32."""
import jax
import numpy as np
import pytest

from vgs_jax import audio_features
from vgs_jax import config_lib
from vgs_jax import flop_count
from tests import model_test_helpers as helpers


@pytest.mark.parametrize("spec", ["configs/shapes_gru.py:tiny,v1", "configs/shapes_transformer.py:tiny,v1",
                                  "configs/shapes_resdavenet.py:tiny,v1"])
def test_bfloat16_policy_multiplies_in_bfloat16_and_keeps_float32_state(spec):
    config = config_lib.load_config(spec)
    config.unlock()
    batch = helpers.train_batch(audio_features.num_features(config.features.recipe))
    shares = {}
    for dtype in ("float32", "bfloat16"):
        config.model.dtype = dtype
        _, step, state = helpers.train_step(config)
        by_dtype = flop_count.matmul_flops_by_dtype(step, state, batch)
        shares[dtype] = by_dtype.get("bfloat16", 0.0) / sum(by_dtype.values())
    assert shares["float32"] == 0.0
    # All encoder matmuls/convs (forward and backward) in bfloat16; what remains float32 is the
    # B x B similarity of the normalised embeddings and its gradient.
    assert shares["bfloat16"] > 0.95, shares
    new_state, metrics = jax.eval_shape(step, state, batch)  # dtypes of the compiled step's outputs
    assert metrics["loss"].dtype == np.float32
    for tree in (new_state["params"], new_state["opt_state"]):
        dtypes = {leaf.dtype for leaf in jax.tree.leaves(tree) if leaf.dtype.kind == "f"}
        assert dtypes == {np.dtype(np.float32)}, dtypes
