"""vgs_jax: visually grounded models of spoken language in JAX/Flax."""
