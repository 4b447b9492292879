"""Platalea's speech-image recipe on SpokenCOCO (the design card's headline config).

    python -m vgs_jax.main --config=configs/coco_gru.py --workdir=runs/coco_gru

The platalea recipe of `configs/flickr8k_gru.py` (reference notes §1: 39-d platalea MFCCs,
Conv1D 39->64 + 4 x BiGRU 1024/direction + vectorial attention -> 2048-d; precomputed
ResNet-152 image vectors -> Linear 2048; symmetric hinge 0.2 over all in-batch negatives;
Adam, cyclic cosine 1e-6 <-> 2e-4, batch 32, 32 epochs, seed 123) trained on
`spoken_coco/raw` with platalea's default SpokenCOCO split `karpathy++` (train = Karpathy
train + restval, validation/test = Karpathy val/test, 5000 images each; §1.10). Same deliberate
difference as flickr8k_gru: attention pooling masks padding.

Data: the builder reads SpokenCOCO, the COCO 2014 images and Karpathy's dataset_coco.json from
`<data_dir>/downloads/manual/spoken_coco/` and builds on first use
(`dataset.build_if_missing`); without those files training stops at once with a message
naming the missing files, that folder and tfds_builders/spoken_coco/README.md. The
`image_features` (ResNet-152) are written beside the built dataset by
`python -m vgs_jax.extract_image_features`.

`:tiny` (tests): the same model family shrunk to seconds on `spoken_coco/tiny` (the builder's
dummy data; 64x64 images, the size the conv image tower takes) with raw pixels through a small
CNN, so it does not depend on the feature extractor. Point `dataset.data_dir` at a directory
where it is built.
"""

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False)
    config = configs.platalea_corpus_config("spoken_coco/raw")
    if arg.tiny:
        config.dataset.name = "spoken_coco/tiny"
        config.dataset.image_key = "image"
        config.model.image_encoder = "conv"
        config.model.image.channels = (8, 16)
        config.model.speech.hidden = 16
        config.model.speech.num_layers = 1
        config.model.speech.attention_hidden = 8
        config.features.max_frames = 64  # dummy utterances are 0.10-0.12 s (10-12 frames)
        config.features.bucket_boundaries = (32, 64)
        config.batch_size = 8
        config.eval_batch_size = 16
        config.num_train_steps = 2
        config.log_every_steps = 1
        config.eval_every_steps = 2
        config.checkpoint_every_steps = 2
    return config
