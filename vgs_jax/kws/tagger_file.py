"""A pretrained visual tagger read from a local weights file (Kamper et al. 2017's fixed tagger).

The file is a NumPy .npz with "keywords" [V] str, "kernel" float [D, V] and "bias" float [V]:
tag logits = image vector @ kernel + bias, over the dataset's image vectors (`config.dataset.image_key`,
e.g. Flickr8K's ResNet-152 vectors, D = 2048). With `kws.tagger_targets="pretrained"` the train batches
carry its sigmoid outputs, and `loss.oracle_tagger=True` makes them the speech model's targets, as
Kamper's frozen tagger's were; the vocabulary is the file's keywords (`kws.vocabulary="tagger_file"`).
"""
import dataclasses
import os

import numpy as np

FIELDS = ("keywords", "kernel", "bias")


@dataclasses.dataclass(frozen=True)
class TaggerFile:
    """keywords [V]; kernel float32 [D, V]; bias float32 [V]."""

    keywords: tuple[str, ...]
    kernel: np.ndarray
    bias: np.ndarray

    def probabilities(self, image_vector: np.ndarray) -> np.ndarray:
        """image vector [D] -> float32 [V]: sigmoid(vector @ kernel + bias)."""
        vector = np.asarray(image_vector, np.float32)
        if vector.shape != self.kernel.shape[:1]:
            raise ValueError(f"The pretrained tagger reads image vectors of {self.kernel.shape[0]} values; got shape "
                             f"{vector.shape}. Point config.dataset.image_key at the vectors it was trained on.")
        logits = vector.astype(np.float64) @ self.kernel + self.bias
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def load(path: str) -> TaggerFile:
    """Reads a tagger file; FileNotFoundError / ValueError say what is missing and what the file must hold."""
    if not path or not os.path.exists(path):
        raise FileNotFoundError(f"Pretrained tagger weights file {path!r} not found (config.kws.tagger_weights). Place "
                                f"a NumPy .npz there with {FIELDS}: keyword strings [V], kernel [D, V], bias [V] "
                                "(logits = image vector @ kernel + bias), or train the tagger from the captions "
                                "(kws.tagger_targets='text').")
    with np.load(path, allow_pickle=False) as f:
        missing = [k for k in FIELDS if k not in f.files]
        if missing:
            raise ValueError(f"Pretrained tagger file {path} lacks {missing}; it needs {FIELDS}.")
        keywords = tuple(str(k) for k in f["keywords"])
        kernel, bias = np.asarray(f["kernel"], np.float32), np.asarray(f["bias"], np.float32)
    if kernel.ndim != 2 or kernel.shape[1] != len(keywords) or bias.shape != (len(keywords),):
        raise ValueError(f"Pretrained tagger file {path}: kernel {kernel.shape} must be [D, {len(keywords)}] and bias "
                         f"{bias.shape} [{len(keywords)}] for its {len(keywords)} keywords.")
    return TaggerFile(keywords, kernel, bias)
