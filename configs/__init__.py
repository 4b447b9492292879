"""Training configs (`--config=configs/NAME.py[:arg]`); installed with vgs_jax as `vgs_jax.configs`."""
