"""vgs_jax.video by hand: sampling strategies, fragments of a fake episode, the MMS loss against a
slow loop, and the visual towers' parameter counts and shapes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vgs_jax import audio_features
from vgs_jax.video import data
from vgs_jax.video import sampling
from vgs_jax.video.encoders import FrameEncoder, VideoEncoder
from vgs_jax.video.loss import masked_margin_softmax_loss

TIMES = np.arange(24) / 8  # a 3-second fragment at 8 fps


def test_frame_strategies():
    rng = np.random.default_rng(0)
    starts, ends = np.array([0.9, 2.2]), np.array([1.4, 2.6])
    uniform = {sampling.frame_index(TIMES, starts, ends, "uniform", rng) for _ in range(400)}
    assert uniform == set(range(24))  # uniform covers the fragment
    assert sampling.frame_index(TIMES, starts, ends, "center", rng) == 12
    for _ in range(50):  # the mention frame lies inside a mention
        t = TIMES[sampling.frame_index(TIMES, starts, ends, "mention", rng)]
        assert np.any((t >= starts) & (t <= ends))
    with pytest.raises(ValueError, match="no frame of this fragment lies inside a mention"):
        sampling.frame_index(TIMES, np.array([0.01]), np.array([0.1]), "mention", rng)
    with pytest.raises(ValueError, match="choose one of"):
        sampling.frame_index(TIMES, starts, ends, "random", rng)


def test_fragment_starts():
    rng = np.random.default_rng(1)
    s = sampling.fragment_starts(10.0, [2.0], 3.0, 8, "uniform", rng, 200)
    assert s.min() >= 0 and s.max() <= 7.0 and np.allclose(s * 8, np.round(s * 8))
    starts, ends = np.array([1.0, 6.0, 10.5]), np.array([3.0, 8.0, 12.0])  # the last starts after the video
    every = sampling.fragment_starts(10.0, starts, 3.0, 8, "mention", rng, None, mention_end=ends)
    assert every.tolist() == [0.5, 5.5]  # centred on each on-screen mention
    assert sampling.fragment_starts(10.0, [9.5], 3.0, 8, "mention", rng, 1, mention_end=[11.0]).tolist() == [7.0]
    with pytest.raises(ValueError, match="do not fit"):
        sampling.fragment_starts(2.0, [], 3.0, 8, "uniform", rng, 1)


def _episode(seconds=6.0, fps=8):
    n = int(seconds * fps)
    video = [np.full((4, 4, 3), k, np.uint8) for k in range(n)]  # frame k has value k
    empty = {"start": np.zeros(0, np.float32), "end": np.zeros(0, np.float32)}
    return {"id": 0, "video": video, "fps": fps, "audio": np.arange(int(seconds * 16000), dtype=np.int16),
            "mentions": {"object": [0, 1], "text": [b"a", b"b"], "start": np.array([1.0, 3.5], np.float32),
                         "end": np.array([3.2, 5.5], np.float32)},
            "words": {"word": [], **empty}, "phones": {"phone": [], **empty},
            "boxes": np.zeros((n, 4), np.float32), "visible": np.zeros(n, bool)}


def test_fragments_of_an_episode():
    featurizer = audio_features.Featurizer(lambda w: np.asarray(w[::1600], np.float32)[:, None], -1.0, 1)
    frags = data.load([_episode()], featurizer, seconds=2.0, per_example=None, strategy="mention")
    assert len(frags) == 2 and frags.video.shape == (2, 16, 4, 4, 3)
    assert frags.frame_times.tolist() == (np.arange(16) / 8).tolist()
    # centred on [1.0, 3.2] -> start 1.125 (on the frame grid); the mention is clipped to the fragment
    assert frags.video[0, 0, 0, 0, 0] == 9 and frags.features[0, 0, 0] == 1.125 * 16000
    assert frags.mention_start[0].tolist() == [0.0] and frags.mention_end[0][0] == pytest.approx(2.0)
    picks = frags.still_frames([0, 1, 1, 0], "mention", np.random.default_rng(0))
    assert picks.shape == (4, 4, 4, 3)
    clips = data.load([_episode(3.0)], featurizer)  # seconds 0: the whole example, all its audio
    assert clips.video.shape == (1, 24, 4, 4, 3) and clips.lengths.tolist() == [30]
    assert clips.mask.sum() == 30 and clips.mention_end[0].tolist() == pytest.approx([3.2, 5.5])


def _slow_mms(sim, margin, temperature, valid):
    """Both directions' cross-entropy over the valid rows / columns, one anchor at a time."""
    b, total = len(sim), 0.0
    n = sum(valid)
    for i in range(b):
        if not valid[i]:
            continue
        for scores in (sim[i], sim[:, i]):
            logits = [(scores[j] - (margin if j == i else 0.0)) / temperature for j in range(b) if valid[j]]
            pos = (scores[i] - margin) / temperature
            total += (np.log(np.sum(np.exp(logits))) - pos) / n
    return total


def test_mms_loss_against_a_loop():
    sim = np.random.default_rng(2).uniform(-1, 1, (5, 5)).astype(np.float32)
    valid = np.array([True, True, False, True, True])
    loss = jax.jit(lambda s, m: masked_margin_softmax_loss(s, margin=0.2, temperature=0.5, mask=m))
    got, grad = loss(sim, valid), jax.jit(jax.grad(loss))(sim, valid)
    assert float(got) == pytest.approx(_slow_mms(sim, 0.2, 0.5, valid), rel=1e-5) and np.isfinite(grad).all()
    full = jax.jit(lambda s: masked_margin_softmax_loss(s))(sim)  # AVLNet's margin 0.001, temperature 1
    assert float(full) == pytest.approx(_slow_mms(sim, 0.001, 1.0, [True] * 5), rel=1e-5)
    with pytest.raises(ValueError, match="square"):
        masked_margin_softmax_loss(jnp.zeros((2, 3)))


def _count(abstract) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))


def test_visual_towers_by_hand():
    # Shapes only (nnx.eval_shape): nothing is initialised or compiled.
    make_video = lambda: VideoEncoder(6, conv3d_channels=4, channels=(8,), image_size=8, rngs=nnx.Rngs(0))
    # conv3d 27*5*4 + 4, GroupNorm 2*4, conv 9*4*8 + 8, GroupNorm 2*8, LayerNorm 2*8, Linear 8*6 + 6
    assert _count(nnx.eval_shape(make_video)) == 544 + 8 + 296 + 16 + 16 + 54
    assert nnx.eval_shape(lambda: make_video()(jnp.zeros((2, 5, 8, 8, 3), jnp.uint8))).shape == (2, 6)
    with pytest.raises(ValueError, match="expected uint8 video"):
        nnx.eval_shape(lambda: make_video()(jnp.zeros((2, 8, 8, 3), jnp.uint8)))
    make_frame = lambda: FrameEncoder.from_config({"channels": (4,), "image_size": 8}, 6, rngs=nnx.Rngs(0))
    # conv 9*5*4 + 4, GroupNorm 2*4, LayerNorm over the 4x4x4 map 2*64, Linear 64*6 + 6
    assert _count(nnx.eval_shape(make_frame)) == 184 + 8 + 128 + 390
    assert nnx.eval_shape(lambda: make_frame()(jnp.zeros((3, 8, 8, 3), jnp.uint8))).shape == (3, 6)
