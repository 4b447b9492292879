"""Per-device memory of each trainer loss's value and gradient: plain (GSPMD) vs ring-chunked.

For every objective of `vgs_jax.objectives.registry.OBJECTIVES` and global batch B, compiles
value_and_grad w.r.t. both embedding matrices [B, E] sharded over the D devices of a ("data",)
mesh, once with the plain loss (GSPMD partitions the B x B matrix) and once with
`loss.chunked=True`'s ring version, and prints XLA's per-device temporary buffer size
(`compiled.memory_analysis().temp_size_in_bytes`). Nothing runs: compile only, so it is quick
on any backend. Similarity-matrix losses score cosine similarities of the embeddings.

Usage: python bench/chunked_loss_memory_bench.py [--devices 8] [--batches 1024,4096] [--dim 512]
(--devices forces that many CPU devices when the backend is CPU.)
"""

import argparse
import os
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--batches", default="1024,4096")
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args()
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_force_host_platform_device_count={args.devices}")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    from vgs_jax.objectives import registry
    from vgs_jax.objectives import similarity

    devices = jax.devices()[: args.devices]
    mesh = Mesh(np.array(devices), ("data",))
    sharded = NamedSharding(mesh, P("data"))
    key = jax.random.key(0)

    def loss_pair(name):
        """(plain, chunked) functions of (z_speech, z_image)."""
        o = registry.OBJECTIVES[name]
        kw = {"temperature": 0.1} if o.temperature else {}
        if o.logit_bias:
            kw["bias"] = -10.0
        if o.inputs == registry.EMBEDDINGS:
            return (lambda a, b: o.fn(a, b, **kw), lambda a, b: o.chunked_fn(a, b, mesh=mesh, **kw))
        plain = lambda a, b: o.fn(similarity.similarity_matrix({"embedding": a}, {"embedding": b}, "cosine"), key)
        ring = lambda a, b: o.chunked_fn({"embedding": a}, {"embedding": b}, key, mesh=mesh)
        return plain, ring

    def temp_mb(fn, batch):
        spec = jax.ShapeDtypeStruct((batch, args.dim), jnp.float32, sharding=sharded)
        compiled = jax.jit(jax.value_and_grad(fn, argnums=(0, 1))).lower(spec, spec).compile()
        return compiled.memory_analysis().temp_size_in_bytes / 2**20

    print(f"per-device temporary memory (MB) of value_and_grad, E={args.dim}, {len(devices)} "
          f"{jax.default_backend()} devices, batch sharded over them")
    header = ("loss", "B", "plain_MB", "chunked_MB", "BxB_f32_MB", "n x n_f32_MB")
    rows = []
    for name in registry.OBJECTIVES:
        plain, ring = loss_pair(name)
        for batch in (int(b) for b in args.batches.split(",")):
            n = batch // len(devices)
            rows.append((name, str(batch), f"{temp_mb(plain, batch):.1f}", f"{temp_mb(ring, batch):.1f}",
                         f"{batch * batch * 4 / 2**20:.1f}", f"{n * n * 4 / 2**20:.2f}"))
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(x.rjust(w) for x, w in zip(r, widths)))


if __name__ == "__main__":
    main()
