"""CELL's speech side: a recurrent phone recogniser, Viterbi phone segmentation, word candidates.

Roy & Pentland (2002) ran a recurrent net trained on phonetically transcribed speech (TIMIT)
to get per-frame phone probabilities, found phone boundaries by Viterbi decoding of them, and
took subsequences with at least one vowel as word candidates. Here:

* `frame_labels`: each 10 ms frame (centred at t * 10 ms, the `mfcc`/`logmel` recipes' framing)
  gets the phone whose aligned [start, end) holds it (stress marks dropped), else `SILENCE`;
* `PhoneRecognizer`: per-dimension standardised features [B, T, F] -> bidirectional GRU layers
  (`recurrent_layers.BiGRU`) -> Linear -> phone logits [B, T, S], trained by `train_recognizer`
  with per-frame cross-entropy (padding masked) and Adam;
* `viterbi`: the best state path of an HMM with one state per phone, emission log-scores = the
  log posteriors, self-loop probability `stay` and the rest spread evenly over the other states,
  uniform start; `segments` collapses it into (phone, first frame, end frame) runs;
* `candidates`: every run of `min_phones`..`max_phones` consecutive decoded phones (silence
  splits runs) holding a vowel (`is_vowel`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from vgs_jax.models.recurrent_layers import BiGRU

SILENCE = "<sil>"
STRESS = "ˈˌ"
FRAME_SECONDS = 0.01
# IPA vowel letters (espeak-ng's English phones; diphthongs and r-coloured vowels contain one).
VOWEL_LETTERS = set("aeiouyæɑɐɒɔəɘɚɛɜɝɞɤɨɪʉʊʌʏøœɵᵻ")


def is_vowel(phone: str) -> bool:
    return any(ch in VOWEL_LETTERS for ch in phone)


def clean(phone) -> str:
    return (phone.decode() if isinstance(phone, bytes) else str(phone)).strip(STRESS)


def frame_labels(num_frames: int, phones: Sequence[str], starts, ends) -> list[str]:
    """[num_frames] phone (or SILENCE) of each frame from a phone alignment (seconds)."""
    times = np.arange(num_frames) * FRAME_SECONDS
    idx = np.searchsorted(np.asarray(ends, np.float64), times, side="right")
    out = []
    for t, k in zip(times, idx):
        out.append(phones[k] if k < len(phones) and float(starts[k]) <= t else SILENCE)
    return out


class PhoneRecognizer(nnx.Module):
    """features [B, T, F] (standardised), mask [B, T] -> phone logits [B, T, S]."""

    def __init__(self, num_features: int, num_phones: int, *, hidden: int, layers: int, rngs: nnx.Rngs):
        if num_phones < 2 or hidden < 1 or layers < 1:
            raise ValueError(f"PhoneRecognizer needs >= 2 phone classes and positive sizes; got "
                             f"num_phones={num_phones}, hidden={hidden}, layers={layers}.")
        self.grus = nnx.List([BiGRU(num_features if i == 0 else 2 * hidden, hidden, rngs=rngs) for i in range(layers)])
        self.out = nnx.Linear(2 * hidden, num_phones, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        for gru in self.grus:
            x = gru(x, mask)
        return self.out(x)


@dataclasses.dataclass
class Recognizer:
    """A trained recogniser with its phone inventory and feature standardisation (mean [F], std [F])."""
    model: PhoneRecognizer
    phones: tuple
    mean: np.ndarray
    std: np.ndarray

    def log_posteriors(self, features: Sequence[np.ndarray], batch: int = 32) -> list[np.ndarray]:
        """Per utterance features [T_i, F] -> log posteriors [T_i, S]."""
        out = []
        for i in range(0, len(features), batch):
            x, mask = pad([(f - self.mean) / self.std for f in features[i:i + batch]])
            logp = np.asarray(_log_softmax(self.model, jnp.asarray(x), jnp.asarray(mask)))
            out += [logp[k, :len(f)] for k, f in enumerate(features[i:i + batch])]
        return out


@nnx.jit
def _log_softmax(model, x, mask):
    return jax.nn.log_softmax(model(x, mask), axis=-1)


def pad(features: Sequence[np.ndarray], multiple: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """[T_i, F] list -> (float32 [B, T, F] zero-padded, bool mask [B, T]); T rounded up to `multiple`
    so batches of similar length share one compilation."""
    t = -(-max(len(f) for f in features) // multiple) * multiple
    x = np.zeros((len(features), t, features[0].shape[1]), np.float32)
    for k, f in enumerate(features):
        x[k, :len(f)] = f
    return x, np.arange(t)[None] < np.array([len(f) for f in features])[:, None]


def train_recognizer(features: Sequence[np.ndarray], labels: Sequence[Sequence[str]], *, hidden: int, layers: int,
                     steps: int, batch_size: int, lr: float, seed: int, log_every: int = 0) -> Recognizer:
    """Per-frame cross-entropy training on utterances' features [T_i, F] and frame labels [T_i]."""
    if not features or steps < 1 or batch_size < 1:
        raise ValueError(f"train_recognizer needs utterances, steps >= 1 and batch_size >= 1; got {len(features)} "
                         f"utterances, steps={steps}, batch_size={batch_size}.")
    phones = tuple(sorted({p for seq in labels for p in seq}))
    index = {p: i for i, p in enumerate(phones)}
    stacked = np.concatenate(features)
    mean, std = stacked.mean(0), np.maximum(stacked.std(0), 1e-6)
    xs = [((f - mean) / std).astype(np.float32) for f in features]
    ys = [np.array([index[p] for p in seq], np.int32) for seq in labels]
    model = PhoneRecognizer(features[0].shape[1], len(phones), hidden=hidden, layers=layers, rngs=nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)

    @nnx.jit
    def step(m, opt, x, mask, y):
        def loss_fn(m):
            ce = optax.softmax_cross_entropy_with_integer_labels(m(x, mask), y)
            return jnp.sum(ce * mask) / jnp.maximum(jnp.sum(mask), 1)
        loss, grads = nnx.value_and_grad(loss_fn)(m)
        opt.update(m, grads)
        return loss

    rng = np.random.default_rng(seed)
    b = min(batch_size, len(xs))
    for i in range(1, steps + 1):
        pick = rng.choice(len(xs), b, replace=False)
        x, mask = pad([xs[k] for k in pick])
        y = np.zeros(mask.shape, np.int32)
        for row, k in enumerate(pick):
            y[row, :len(ys[k])] = ys[k]
        loss = step(model, optimizer, jnp.asarray(x), jnp.asarray(mask), jnp.asarray(y))
        if log_every and (i % log_every == 0 or i == steps):
            print(f"phone recogniser step {i}/{steps}  loss {float(loss):.4f}", flush=True)
    return Recognizer(model, phones, mean, std)


def viterbi(log_emissions: np.ndarray, stay: float) -> np.ndarray:
    """log_emissions [T, S] -> the most probable state path [T] under a uniform start, self-loop
    probability `stay` and (1 - stay) / (S - 1) to each other state."""
    t_len, s = log_emissions.shape
    if not 0.0 < stay < 1.0 or s < 2:
        raise ValueError(f"viterbi needs 0 < stay < 1 and >= 2 states; got stay={stay}, {s} states.")
    log_stay, log_move = np.log(stay), np.log((1.0 - stay) / (s - 1))
    score = log_emissions[0] - np.log(s)
    back = np.zeros((t_len, s), np.int64)
    for t in range(1, t_len):
        best_other = int(np.argmax(score))
        move = score[best_other] + log_move
        # The best predecessor of state j other than j itself: the best state, or the runner-up for j = best.
        runner = np.where(np.arange(s) == best_other, -np.inf, score)
        second = int(np.argmax(runner))
        other_score = np.full(s, move)
        other_score[best_other] = score[second] + log_move
        other_from = np.full(s, best_other)
        other_from[best_other] = second
        stay_score = score + log_stay
        take_stay = stay_score >= other_score
        back[t] = np.where(take_stay, np.arange(s), other_from)
        score = np.where(take_stay, stay_score, other_score) + log_emissions[t]
    path = np.zeros(t_len, np.int64)
    path[-1] = int(np.argmax(score))
    for t in range(t_len - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def segments(path: Sequence[int], phones: Sequence[str]) -> list[tuple[str, int, int]]:
    """State path [T] -> runs (phone, first frame, end frame (exclusive)), silence included."""
    out, start = [], 0
    for t in range(1, len(path) + 1):
        if t == len(path) or path[t] != path[start]:
            out.append((phones[path[start]], start, t))
            start = t
    return out


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A word candidate: its phones and its span in frames [start, end)."""
    phones: tuple
    start: int
    end: int


def candidates(segs: Sequence[tuple[str, int, int]], min_phones: int, max_phones: int) -> list[Candidate]:
    """Every run of min_phones..max_phones consecutive non-silence segments holding a vowel."""
    out = []
    for i in range(len(segs)):
        for n in range(min_phones, max_phones + 1):
            run = segs[i:i + n]
            if len(run) < n or any(p == SILENCE for p, _, _ in run):
                break
            if any(is_vowel(p) for p, _, _ in run):
                out.append(Candidate(tuple(p for p, _, _ in run), run[0][1], run[-1][2]))
    return out
