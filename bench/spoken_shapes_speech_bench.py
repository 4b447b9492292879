"""Cost and prosodic variety of spoken_shapes speech: 1.0.0 speakers vs 2.0 voices + acoustics.

Usage: python bench/spoken_shapes_speech_bench.py [--images=40] [--language=en]
Speaks the 5 captions of `--images` scenes (1.0.0 grammar) three ways, each in a forked child
like the builder: `1.0.0` (`synthesize` with the 16-speaker table), `2.0 voice`
(`speak` with `sample_voice`, train pool), `2.0 voice+acoustics` (plus `acoustics.apply`
with the default options and `to_int16`). Prints ms per utterance (one process, so per core),
seconds of audio per utterance, the projected time for 20 000 utterances on 2 workers, the share
of exact-zero samples and the longest run of them.

Then, for 1.0.0 and 2.0, speaks each caption with two different speakers and prints the median
Pearson r between their per-word pitch contours (F0 by autocorrelation, 10 ms frames; each
word's voiced frames resampled to 5 points of log F0; words voiced in both utterances
concatenated): near 1 means every speaker uses the same tune.
"""

import argparse
import os
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

# pylint: disable=wrong-import-position
from tfds_builders.spoken_shapes import acoustics, grammar, scenes, speech, voices

SR = speech.SAMPLE_RATE


def captions(num_images: int) -> list[str]:
    lexicon = grammar.get_lexicon("en")
    texts = []
    for image_id in range(num_images):
        rng = np.random.default_rng([12345, image_id])
        texts += grammar.make_captions(scenes.sample_scene(rng), lexicon, rng, 5)
    return texts


def _speak(mode: str, texts: list[str], language: str, seed: int):
    """Runs in a forked child: returns (seconds per utterance, audio seconds, utterances)."""
    synthesizer = speech.get_synthesizer()
    lexicon = grammar.get_lexicon("en")
    table = speech.make_speaker_table(lexicon.voices)
    rng = np.random.default_rng(seed)
    out = []
    start = time.perf_counter()
    for i, text in enumerate(texts):
        if mode == "1.0.0":
            utt = synthesizer.synthesize(text, table[(seed + i) % len(table)],
                                         lexicon.joined_word_phones)
            out.append((utt.waveform, utt.words))
        else:
            utt = synthesizer.speak(text, voices.sample_voice(rng, language, "train"),
                                    lexicon.joined_word_phones)
            wave = utt.waveform
            if mode == "2.0 voice+acoustics":
                recorded, _ = acoustics.apply(acoustics.from_int16(wave), rng)
                wave = acoustics.to_int16(recorded)
            out.append((wave, utt.words))
    seconds = (time.perf_counter() - start) / len(texts)
    audio = float(np.mean([w.shape[0] / SR for w, _ in out]))
    return seconds, audio, out


def _longest_zero_run(wave: np.ndarray) -> int:
    """Length of the longest run of exact-zero samples in int16 [n]."""
    edges = np.diff(np.concatenate([[0], (wave == 0).astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int(np.max(ends - starts)) if starts.size else 0


def f0_track(wave: np.ndarray) -> np.ndarray:
    """float [num_frames]: F0 in Hz per 10 ms frame (40 ms window), NaN where unvoiced."""
    x = wave.astype(np.float64)
    frame, hop = 640, 160
    if x.shape[0] < frame:
        return np.full(0, np.nan)
    frames = np.lib.stride_tricks.sliding_window_view(x, frame)[::hop]
    frames = (frames - frames.mean(axis=1, keepdims=True)) * np.hanning(frame)
    spec = np.fft.rfft(frames, 2 * frame)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:, :frame]
    energy = ac[:, 0]
    lo, hi = SR // 400, SR // 60
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    peak = ac[np.arange(ac.shape[0]), lag] / np.maximum(energy, 1e-9)
    voiced = (peak > 0.45) & (energy > 0.01 * energy.max())
    return np.where(voiced, SR / lag, np.nan)


def word_contours(wave: np.ndarray, words) -> dict[int, np.ndarray]:
    """{word index: 5-point log-F0 contour} for words with >= 3 voiced frames."""
    f0 = f0_track(wave)
    out = {}
    for k, (_, start, end) in enumerate(words):
        seg = f0[int(start * 100):max(int(start * 100) + 1, int(end * 100) - 3)]
        seg = np.log(seg[~np.isnan(seg)])
        if seg.shape[0] >= 3:
            out[k] = np.interp(np.linspace(0, seg.shape[0] - 1, 5), np.arange(seg.shape[0]), seg)
    return out


def contour_correlation(a, b) -> float:
    ca, cb = word_contours(*a), word_contours(*b)
    common = sorted(set(ca) & set(cb))
    if len(common) < 3:
        return float("nan")
    return float(np.corrcoef(np.concatenate([ca[k] for k in common]),
                             np.concatenate([cb[k] for k in common]))[0, 1])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--language", default="en", help="voice pool for the 2.0 rows")
    args = parser.parse_args()
    texts = captions(args.images)
    print(f"{len(texts)} captions, load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs (timings are under that load)")
    print(f"{'mode':24s} {'ms/utt':>8s} {'audio s/utt':>12s} {'20k utts, 2 workers':>20s} "
          f"{'exact zeros':>12s} {'longest zero run':>17s}")
    results = {}
    for mode in ("1.0.0", "2.0 voice", "2.0 voice+acoustics"):
        seconds, audio, out = speech.run_isolated(_speak, mode, texts, args.language, 0)
        results[mode] = out
        zeros = np.mean(np.concatenate([w for w, _ in out]) == 0)
        run = max(_longest_zero_run(w) for w, _ in out)
        print(f"{mode:24s} {1000 * seconds:8.1f} {audio:12.2f} {20000 * seconds / 2:19.0f}s "
              f"{100 * zeros:11.2f}% {run:12d} smp")
    print("\nper-word pitch contour correlation between two speakers of the same caption")
    for mode in ("1.0.0", "2.0 voice"):
        other = speech.run_isolated(_speak, mode, texts, args.language, 7)[2]
        rs = [contour_correlation(a, b) for a, b in zip(results[mode], other)]
        rs = np.array([r for r in rs if not np.isnan(r)])
        print(f"{mode:24s} median r = {np.median(rs):.2f} "
              f"(quartiles {np.quantile(rs, 0.25):.2f}, {np.quantile(rs, 0.75):.2f}; "
              f"{rs.shape[0]} captions)")


if __name__ == "__main__":
    main()
