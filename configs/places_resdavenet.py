"""ResDAVEnet (Harwath, Hsu & Glass, ICLR 2020; survey table 3) on Places, its recipe (anchor §3).

    python -m vgs_jax.main --config=configs/places_resdavenet.py --workdir=runs/places_resdavenet \\
        --config.model.image.weights=/path/to/resnet50-0676ba61.pth

Reproduces `wnhsu/ResDAVEnet-VQ` `run_ResDavenetVQ.py` without quantisers: 40-d log-mel (§3.1);
conv1 (40x1, 128, no bias) BN ReLU, four residual stages of 2 basic blocks, widths
256/256/512/1024, kernel 9, stride 2 per stage (§3.2); the reference's jitter (0/+1/+2 shifts,
p 0.12) after positions 1 and 2; ResNet-50 trunk + 1x1 conv to 1024 -> 7 x 7 map, ImageNet
weights (the reference default: pass the torchvision file as above; without it the trunk starts
from random init, the "end-to-end" condition) trained end to end (`freeze_trunk=True` =
`--freeze-image-model`) (§3.4); pooled dot product similarity; sampled + semi-hard hinges in
both directions with the reference's mask-multiply quirk, margin 1 (§3.5); Adam lr 2e-4,
weight decay 5e-7, lr x 0.95 every 3 epochs, batch 64, 150 epochs, seed 8675309 (§3.6).
Differences, stated: no RandomResizedCrop augmentation, BatchNorm statistics over valid frames
only, the unused input BatchNorm omitted. `:tiny` shrinks sizes for tests.
"""

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False)
    return configs.places_resdavenet_config(tiny=arg.tiny, vq="")
