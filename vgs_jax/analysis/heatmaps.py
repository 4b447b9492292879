"""PNG figures of matchmaps over images, one panel per aligned word (matplotlib Agg, no pyplot).

Each panel shows the image with the word's heatmap overlaid: the matchmap ``[H, W, T]`` summed
over the word's frames (``localization.word_frames``: frame j spans ``[j, j + 1) * frame_shift +
frame_offset`` seconds; 0.16 s for a 16x-downsampled map of 10 ms features), stretched over the
whole image (bilinear) and drawn semi-transparent; the panel title is the word and its times,
the figure title the caption. Heatmaps share one colour scale so panels compare.
"""

import os
from typing import Callable, Sequence

import numpy as np

from vgs_jax import audio_features
from vgs_jax.analysis import localization as loc


def _check_image(image) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[..., None].repeat(3, axis=-1)
    if img.ndim != 3 or img.shape[-1] not in (1, 3, 4) or 0 in img.shape:
        raise ValueError(f"image must be [S, S', 3] (uint8 or float in [0, 1]), got shape {img.shape}")
    if img.shape[-1] == 1:
        img = img.repeat(3, axis=-1)
    return img


def plot_word_heatmaps(image, matchmap, words: Sequence[tuple], path: str, *, caption: str | None = None,
                       frame_shift: float = loc.DEFAULT_FRAME_SHIFT, frame_offset: float = 0.0,
                       only: Sequence[str] | None = None, max_panels: int = 12, alpha: float = 0.55) -> str:
    """Writes the figure to ``path`` (.png) and returns it.

    Args:
      image: ``[S, S', 3]`` uint8 (or float in [0, 1]) image.
      matchmap: ``[H, W, T]`` over its valid cells and frames.
      words: ``(word, start_s, end_s)`` alignment of the caption.
      caption: figure title (default: the words joined by spaces).
      only: draw only these words (e.g. the object words); max_panels caps the panel count.
    """
    img = _check_image(image)
    m = np.asarray(matchmap, dtype=np.float64)
    if m.ndim != 3 or 0 in m.shape:
        raise ValueError(f"matchmap must be a non-empty [H, W, T] array, got shape {m.shape}")
    if not str(path).lower().endswith(".png"):
        raise ValueError(f"path must name a .png file, got {path!r}")
    if max_panels < 1 or not 0 <= alpha <= 1:
        raise ValueError(f"need max_panels >= 1 and alpha in [0, 1]; got {max_panels}, {alpha}")
    words = [(w.decode() if isinstance(w, bytes) else str(w), float(s), float(e)) for w, s, e in words]
    if not words:
        raise ValueError("words is empty; give the caption's (word, start_s, end_s) alignment")
    panels = []
    for w, s, e in words:
        if only is not None and w not in only:
            continue
        frames = loc.word_frames(s, e, m.shape[2], frame_shift=frame_shift, frame_offset=frame_offset)
        if frames.stop > frames.start:
            panels.append((w, s, e, loc.word_heatmap(m, frames)))
    if not panels:
        raise ValueError(f"none of the words {[w for w, _, _ in words]} (filtered by only={only}) has frames "
                         f"in a matchmap of {m.shape[2]} frames; check frame_shift={frame_shift}")
    panels = panels[:max_panels]
    # A bare Figure renders with Agg and leaves pyplot's global backend and figures alone.
    from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel

    lo = min(p[3].min() for p in panels)
    hi = max(p[3].max() for p in panels)
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(3 * cols, 3 * rows + 0.6))
    axes = fig.subplots(rows, cols, squeeze=False)
    extent = (0, img.shape[1], img.shape[0], 0)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (w, s, e, heat) in zip(axes.ravel(), panels):
        ax.imshow(img, extent=extent)
        ax.imshow(heat, extent=extent, cmap="jet", alpha=alpha, interpolation="bilinear", vmin=lo,
                  vmax=hi if hi > lo else lo + 1)
        ax.set_title(f"{w} ({s:.2f}-{e:.2f} s)", fontsize=9)
    fig.suptitle(caption if caption is not None else " ".join(w for w, _, _ in words), fontsize=10)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=80)
    return path


def run_heatmaps(audio_maps_fn: Callable, image_maps_fn: Callable, examples: Sequence[dict], output_dir: str, *,
                 featurizer: audio_features.Featurizer, max_examples: int = 8, only: Sequence[str] | None = None,
                 frame_shift: float = loc.DEFAULT_FRAME_SHIFT, frame_offset: float = 0.0,
                 batch_size: int = 16) -> list[str]:
    """Writes ``output_dir/heatmap_<caption_id or index>.png`` for the first max_examples examples.

    audio_maps_fn / image_maps_fn / featurizer: as `localization.run_localization`; examples need
    "audio", "image", "words" and optionally "text" and "caption_id". Returns the paths.
    """
    if max_examples < 1:
        raise ValueError(f"max_examples must be >= 1, got {max_examples}")
    head = [examples[i] for i in range(min(max_examples, len(examples)))]
    paths = []
    for k, (ex, mm, _, _) in enumerate(loc.example_matchmaps(head, audio_maps_fn, image_maps_fn,
                                                            featurizer=featurizer, batch_size=batch_size)):
        text = ex.get("text")
        caption = text.decode() if isinstance(text, bytes) else text
        name = f"heatmap_{int(ex['caption_id']) if 'caption_id' in ex else k}.png"
        paths.append(plot_word_heatmaps(ex["image"], mm, loc.intervals(ex["words"], "word"),
                                        os.path.join(output_dir, name), caption=caption, only=only,
                                        frame_shift=frame_shift, frame_offset=frame_offset))
    return paths
