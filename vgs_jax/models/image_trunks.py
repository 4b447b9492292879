"""Pixel image trunks: VGG16 (DAVEnet, anchor §2.2) and ResNet-50 (ResDAVEnet, anchor §3.4).

Both take images [B, H, W, 3] (NHWC) and return a feature map with a mask of ones:

- `VGG16Trunk`: torchvision VGG16 `features` without the final max-pool (conv5_3 + ReLU, stride
  16), then an embedder Conv(512 -> out, 3x3, pad 1) with bias and no activation:
  [B, H // 16, W // 16, out] (14 x 14 for 224 x 224 input).
- `ResNet50Trunk`: torchvision ResNet-50 (v1.5: stride on the 3x3 conv of a bottleneck) without
  avgpool / fc, then an embedder Conv(2048 -> out, 1x1) with bias: [B, ceil(H / 32), ceil(W / 32),
  out] (7 x 7 for 224 x 224 input; H // 32 when H is a multiple of 32).

Pixels. uint8 input is scaled to [0, 1] and normalised with the ImageNet mean (0.485, 0.456, 0.406)
and std (0.229, 0.224, 0.225), as torchvision's `ToTensor` + `Normalize`; float input is taken as
already normalised and used as is.

Parameters and init follow torchvision: convs He-normal with fan-out (VGG convs have zero biases,
ResNet convs none), BatchNorm scale 1 / bias 0, embedders PyTorch's default uniform init. Parameter
counts equal torchvision's (VGG16 features 14,714,688; ResNet-50 without fc 23,508,032) plus the
embedder. Weights from torchvision `.pth` files: `vgs_jax.models.weight_conversion`.

Train / eval. ResNet BatchNorms start in train mode (batch statistics; running averages with
PyTorch momentum 0.1 = flax momentum 0.9); `model.eval()` switches to running averages. Running
statistics are `nnx.BatchStat`, outside `nnx.Param`.

Frozen trunk (config field `freeze_trunk`, ResDAVEnet's `--freeze-image-model`). With
`freeze_trunk=True` the trunk output passes through `stop_gradient`, so only the embedder gets
gradients; the optimizer should also mask the trunk out with `trainable_mask(params)` (True for
embedder leaves), e.g. `optax.masked(opt, trainable_mask(params))`, so weight decay does not move
it. BatchNorm running statistics still follow train / eval mode, as in the reference.
"""
import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models.davenet import he_normal_fan_out
from vgs_jax.models.pooling import torch_uniform_init

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

VGG16_WIDTHS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
"""Conv widths of VGG16's five blocks; a 2x2 max-pool follows every block but the last."""

RESNET50_STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))
"""(bottleneck width, blocks, stride of the first block) for layer1..layer4; output width = 4 x width."""

EMBEDDER_NAME = "embedder"


def normalize_pixels(image: jax.Array, where: str) -> jax.Array:
    """image [B, H, W, 3] uint8 (ImageNet mean/std applied) or float (used as is) -> float32."""
    if image.ndim != 4 or image.shape[-1] != 3:
        raise ValueError(f"{where}: expected images [batch, height, width, 3] (NHWC RGB), got shape {image.shape}.")
    if image.dtype == jnp.uint8:
        mean = jnp.asarray(IMAGENET_MEAN, jnp.float32)
        std = jnp.asarray(IMAGENET_STD, jnp.float32)
        return (image.astype(jnp.float32) / 255.0 - mean) / std
    if not jnp.issubdtype(image.dtype, jnp.floating):
        raise ValueError(
            f"{where}: images must be uint8 pixels or already-normalised floats, got dtype {image.dtype}.")
    return image.astype(jnp.float32)


def max_pool_2d(x: jax.Array, window: int, stride: int, pad: int) -> jax.Array:
    """Max-pool over H and W of [B, H, W, C] with -inf padding `pad` each side (PyTorch's MaxPool2d).

    The init value is the Python scalar -inf, so JAX lowers this to its differentiable max-pool
    (a `jnp.array` init value fails under `jit` + `grad` with "Linearization failed ...")."""
    pads = ((0, 0), (pad, pad), (pad, pad), (0, 0))
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, window, window, 1), (1, stride, stride, 1), pads)


def _conv(cin: int, cout: int, kernel: int, stride: int, *, bias: bool, dtype, rngs: nnx.Rngs,
          torch_default: bool = False) -> nnx.Conv:
    pad = kernel // 2
    if torch_default:
        kinit = binit = torch_uniform_init(cin * kernel * kernel)
    else:
        kinit, binit = he_normal_fan_out(kernel * kernel * cout), nnx.initializers.zeros_init()
    return nnx.Conv(cin, cout, kernel_size=(kernel, kernel), strides=(stride, stride),
                    padding=((pad, pad), (pad, pad)), use_bias=bias, kernel_init=kinit, bias_init=binit,
                    dtype=dtype, rngs=rngs)


def _batch_norm(channels: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
    return nnx.BatchNorm(channels, momentum=0.9, epsilon=1e-5, rngs=rngs)


def _check_out_features(out_features: int, where: str) -> None:
    if int(out_features) < 1:
        raise ValueError(f"{where}: out_features must be a positive int, got {out_features}.")


def _check_size(image: jax.Array, stride: int, where: str) -> None:
    if image.shape[1] < stride or image.shape[2] < stride:
        raise ValueError(
            f"{where}: images must be at least {stride}x{stride} pixels (total stride {stride}), got "
            f"{image.shape[1]}x{image.shape[2]}.")


def _optional_field(image_config, name: str, default):
    try:
        return image_config[name]
    except (KeyError, AttributeError, TypeError):
        return default


def _trunk_from_config(cls, image_config, out_features: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
    """Build a trunk from a config with optional field `freeze_trunk` (bool, default False)."""
    return cls(out_features=out_features, freeze_trunk=bool(_optional_field(image_config, "freeze_trunk", False)),
               dtype=dtype, rngs=rngs)


def _finish(trunk_out: jax.Array, embedder: nnx.Conv, freeze: bool) -> tuple[jax.Array, jax.Array]:
    if freeze:
        trunk_out = jax.lax.stop_gradient(trunk_out)
    out = embedder(trunk_out).astype(jnp.float32)
    return out, jnp.ones(out.shape[:3], jnp.bool_)


class VGG16Trunk(nnx.Module):
    """torchvision VGG16 `features` minus the last max-pool, plus a 3x3 conv embedder (DAVEnet)."""

    def __init__(self, *, out_features: int = 1024, freeze_trunk: bool = False, dtype=jnp.float32,
                 rngs: nnx.Rngs):
        _check_out_features(out_features, "VGG16Trunk")
        self.out_features = int(out_features)
        self.freeze_trunk = bool(freeze_trunk)
        convs, cin = [], 3
        for block in VGG16_WIDTHS:
            for cout in block:
                convs.append(_conv(cin, cout, 3, 1, bias=True, dtype=dtype, rngs=rngs))
                cin = cout
        self.features = nnx.List(convs)
        self.embedder = _conv(cin, self.out_features, 3, 1, bias=True, dtype=dtype, rngs=rngs,
                              torch_default=True)

    from_config = classmethod(_trunk_from_config)

    def trunk(self, image: jax.Array) -> jax.Array:
        """image [B, H, W, 3] (uint8 or normalised float) -> conv5_3 + ReLU [B, H//16, W//16, 512]."""
        x = normalize_pixels(image, "VGG16Trunk")
        _check_size(image, 16, "VGG16Trunk")
        i = 0
        for b, block in enumerate(VGG16_WIDTHS):
            for _ in block:
                x = jax.nn.relu(self.features[i](x))
                i += 1
            if b < len(VGG16_WIDTHS) - 1:
                x = max_pool_2d(x, 2, 2, 0)
        return x

    def __call__(self, image: jax.Array) -> tuple[jax.Array, jax.Array]:
        """image [B, H, W, 3] -> (map [B, H//16, W//16, out_features] float32, mask of ones bool [B, H//16, W//16])."""
        return _finish(self.trunk(image), self.embedder, self.freeze_trunk)


class Bottleneck(nnx.Module):
    """torchvision ResNet v1.5 bottleneck: 1x1 BN ReLU, 3x3(stride) BN ReLU, 1x1(x4) BN, + shortcut, ReLU."""

    def __init__(self, in_channels: int, width: int, stride: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        out = 4 * width
        self.conv1 = _conv(in_channels, width, 1, 1, bias=False, dtype=dtype, rngs=rngs)
        self.bn1 = _batch_norm(width, rngs)
        self.conv2 = _conv(width, width, 3, stride, bias=False, dtype=dtype, rngs=rngs)
        self.bn2 = _batch_norm(width, rngs)
        self.conv3 = _conv(width, out, 1, 1, bias=False, dtype=dtype, rngs=rngs)
        self.bn3 = _batch_norm(out, rngs)
        if stride != 1 or in_channels != out:
            self.downsample_conv = _conv(in_channels, out, 1, stride, bias=False, dtype=dtype, rngs=rngs)
            self.downsample_bn = _batch_norm(out, rngs)
        else:
            self.downsample_conv = None
            self.downsample_bn = None

    def __call__(self, x: jax.Array) -> jax.Array:
        """x [B, H, W, in] -> [B, ceil(H/stride), ceil(W/stride), 4 * width] (float32 BatchNorm outputs)."""
        y = jax.nn.relu(self.bn1(self.conv1(x)))
        y = jax.nn.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        short = x if self.downsample_conv is None else self.downsample_bn(self.downsample_conv(x))
        return jax.nn.relu(y + short)


class ResNet50Trunk(nnx.Module):
    """torchvision ResNet-50 minus avgpool / fc, plus a 1x1 conv embedder (ResDAVEnet).

    Attribute names mirror torchvision's (conv1, bn1, layer1..layer4, Bottleneck conv1..bn3,
    downsample_conv / downsample_bn for torchvision's downsample.0 / downsample.1).
    """

    def __init__(self, *, out_features: int = 1024, freeze_trunk: bool = False, dtype=jnp.float32,
                 rngs: nnx.Rngs):
        _check_out_features(out_features, "ResNet50Trunk")
        self.out_features = int(out_features)
        self.freeze_trunk = bool(freeze_trunk)
        self.conv1 = _conv(3, 64, 7, 2, bias=False, dtype=dtype, rngs=rngs)
        self.bn1 = _batch_norm(64, rngs)
        cin = 64
        stages = []
        for width, blocks, stride in RESNET50_STAGES:
            stage = []
            for j in range(blocks):
                stage.append(Bottleneck(cin, width, stride if j == 0 else 1, dtype=dtype, rngs=rngs))
                cin = 4 * width
            stages.append(nnx.List(stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.embedder = _conv(cin, self.out_features, 1, 1, bias=True, dtype=dtype, rngs=rngs,
                              torch_default=True)

    from_config = classmethod(_trunk_from_config)

    def trunk(self, image: jax.Array) -> jax.Array:
        """image [B, H, W, 3] (uint8 or normalised float) -> layer4 output [B, ceil(H/32), ceil(W/32), 2048]."""
        x = normalize_pixels(image, "ResNet50Trunk")
        _check_size(image, 32, "ResNet50Trunk")
        x = jax.nn.relu(self.bn1(self.conv1(x)))
        x = max_pool_2d(x, 3, 2, 1)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                x = block(x)
        return x

    def __call__(self, image: jax.Array) -> tuple[jax.Array, jax.Array]:
        """image [B, H, W, 3] -> (map [B, H/32, W/32, out_features] float32, mask of ones bool [B, H/32, W/32])."""
        return _finish(self.trunk(image), self.embedder, self.freeze_trunk)


def trainable_mask(params, *, freeze_trunk: bool = True):
    """Pytree of bools with `params`' structure (nnx.State or nested dict): with `freeze_trunk`, True
    exactly for leaves under an 'embedder' key (the only part trained with a frozen trunk); without,
    all True. Use as an optax mask."""
    def leaf(path, _):
        if not freeze_trunk:
            return True
        return any(getattr(k, "key", getattr(k, "name", None)) == EMBEDDER_NAME for k in path)

    mask = jax.tree_util.tree_map_with_path(leaf, params)
    if freeze_trunk and not any(jax.tree.leaves(mask)):
        raise ValueError("trainable_mask: params have no 'embedder' entry; pass the image trunk's parameters.")
    return mask


IMAGE_TRUNKS = {"vgg16": VGG16Trunk, "resnet50": ResNet50Trunk}
