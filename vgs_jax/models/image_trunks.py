"""Pixel image trunks: VGG16 (DAVEnet, anchor §2.2), ResNet-50/101/152 (ResDAVEnet, anchor §3.4),
and the frozen feature extractors of platalea-style image vectors (anchor §1.3).

The trunks take images [B, H, W, 3] (NHWC) and return a feature map with a mask of ones:

- `VGG16Trunk`: torchvision VGG16 `features` without the final max-pool (conv5_3 + ReLU, stride
  16), then an embedder Conv(512 -> out, 3x3, pad 1) with bias and no activation:
  [B, H // 16, W // 16, out] (14 x 14 for 224 x 224 input).
- `ResNet50Trunk`: torchvision ResNet-50 (v1.5: stride on the 3x3 conv of a bottleneck) without
  avgpool / fc, then an embedder Conv(2048 -> out, 1x1) with bias: [B, ceil(H / 32), ceil(W / 32),
  out] (7 x 7 for 224 x 224 input; H // 32 when H is a multiple of 32). `ResNetTrunk(depth=101|152)`
  is the same with torchvision's deeper stage tables.

Feature extractors (no embedder, BatchNorm in eval mode, classifier-free):

- `ResNetFeatures(depth=152)`: global average pool of layer4 -> [B, 2048] (torchvision ResNet with
  `fc` removed; platalea's image vector).
- `VGG16Features`: torchvision VGG16 `features` (with the last max-pool), `AdaptiveAvgPool2d(7)`,
  then classifier fc6 (`classifier.0`, 25088 -> 4096) + ReLU and fc7 (`classifier.3`, 4096 -> 4096) +
  ReLU (dropout is the identity at inference) -> [B, 4096], the penultimate "fc7" vector. The 7x7
  pooled map is flattened in (H, W, C) order; the converter permutes torch's (C, H, W) columns.

Pixels. uint8 input is scaled to [0, 1] and normalised with the ImageNet mean (0.485, 0.456, 0.406)
and std (0.229, 0.224, 0.225), as torchvision's `ToTensor` + `Normalize`; float input is taken as
already normalised and used as is.

Parameters and init follow torchvision: convs He-normal with fan-out (VGG convs have zero biases,
ResNet convs none), BatchNorm scale 1 / bias 0, embedders PyTorch's default uniform init. Parameter
counts equal torchvision's (VGG16 features 14,714,688; ResNet-50 / -101 / -152 without fc 23,508,032 /
42,500,160 / 58,143,808; VGG16 without classifier.6 134,260,544) plus the embedder. VGG classifier
Linears are N(0, 0.01) with zero biases, as torchvision. Weights from torchvision `.pth` files: `vgs_jax.models.weight_conversion`.

Train / eval. ResNet BatchNorms start in train mode (batch statistics; running averages with
PyTorch momentum 0.1 = flax momentum 0.9); `model.eval()` switches to running averages. Running
statistics are `nnx.BatchStat`, outside `nnx.Param`. The trunks take an optional example `mask`
[B] bool: in train mode BatchNorm statistics come from the rows where it is True only, so padding
rows (a batch padded to a multiple of the device count) change neither the valid rows' outputs
nor the running averages. VGG16 has no BatchNorm and ignores it.

Frozen trunk (config field `freeze_trunk`, ResDAVEnet's `--freeze-image-model`). With
`freeze_trunk=True` the trunk output passes through `stop_gradient`, so only the embedder gets
gradients; the optimizer should also mask the trunk out with `trainable_mask(params)` (True for
embedder leaves), e.g. `optax.masked(opt, trainable_mask(params))`, so weight decay does not move
it. BatchNorm running statistics still follow train / eval mode, as in the reference.

Remat (config field `remat`, config.model.remat). With `remat=True` each VGG16 block (its convs and
max-pool) and each ResNet stage unit (the stem, every bottleneck) keeps only its input for the
backward pass and recomputes the rest there (`models.remat`); BatchNorm statistics are carried out,
so outputs, gradients and running averages are unchanged.
"""
import functools

import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models import remat as remat_lib
from vgs_jax.models.conv_map_layers import he_normal_fan_out
from vgs_jax.models.image_encoders import MAP_IMAGE, optional_field
from vgs_jax.models.pooling import torch_uniform_init

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

VGG16_WIDTHS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
"""Conv widths of VGG16's five blocks; a 2x2 max-pool follows every block but the last."""

RESNET_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
"""Bottleneck blocks in layer1..layer4 of torchvision's resnet50 / resnet101 / resnet152."""


def resnet_stages(depth: int) -> tuple[tuple[int, int, int], ...]:
    """(bottleneck width, blocks, stride of the first block) for layer1..layer4 of ResNet-`depth`."""
    if depth not in RESNET_BLOCKS:
        raise ValueError(f"ResNet depth {depth!r} is not supported; choose one of {sorted(RESNET_BLOCKS)}.")
    return tuple((w, b, s) for (w, s), b in zip(((64, 1), (128, 2), (256, 2), (512, 2)), RESNET_BLOCKS[depth]))


RESNET50_STAGES = resnet_stages(50)
"""(bottleneck width, blocks, stride of the first block) for layer1..layer4; output width = 4 x width."""

VGG_POOL = 7
"""torchvision VGG's AdaptiveAvgPool2d output side: fc6 reads 512 * 7 * 7 = 25088 inputs."""

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


def _batch_norm(channels: int, rngs: nnx.Rngs, frozen: bool = False) -> nnx.BatchNorm:
    return nnx.BatchNorm(channels, momentum=0.9, epsilon=1e-5, use_running_average=frozen, rngs=rngs)


def adaptive_avg_pool_2d(x: jax.Array, out_h: int, out_w: int) -> jax.Array:
    """PyTorch's AdaptiveAvgPool2d on [B, H, W, C]: output cell (i, j) averages rows
    [floor(i H / out_h), ceil((i + 1) H / out_h)) and the same for columns -> [B, out_h, out_w, C]."""
    h, w = x.shape[1], x.shape[2]
    if (h, w) == (out_h, out_w):
        return x
    rows = []
    for i in range(out_h):
        r0, r1 = (i * h) // out_h, -(-((i + 1) * h) // out_h)
        cols = [jnp.mean(x[:, r0:r1, (j * w) // out_w:-(-((j + 1) * w) // out_w)], axis=(1, 2))
                for j in range(out_w)]
        rows.append(jnp.stack(cols, axis=1))
    return jnp.stack(rows, axis=1)


def _check_out_features(out_features: int, where: str) -> None:
    if int(out_features) < 1:
        raise ValueError(f"{where}: out_features must be a positive int, got {out_features}.")


def _check_size(image: jax.Array, stride: int, where: str) -> None:
    if image.shape[1] < stride or image.shape[2] < stride:
        raise ValueError(
            f"{where}: images must be at least {stride}x{stride} pixels (total stride {stride}), got "
            f"{image.shape[1]}x{image.shape[2]}.")


def _trunk_from_config(cls, image_config, out_features: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
    """Build a trunk from a config with optional fields `freeze_trunk` and `remat` (bools, default False)."""
    return cls(out_features=out_features, freeze_trunk=bool(optional_field(image_config, "freeze_trunk", False)),
               remat=bool(optional_field(image_config, "remat", False)), dtype=dtype, rngs=rngs)


def _finish(trunk_out: jax.Array, embedder: nnx.Conv, freeze: bool) -> tuple[jax.Array, jax.Array]:
    if freeze:
        trunk_out = jax.lax.stop_gradient(trunk_out)
    out = embedder(trunk_out).astype(jnp.float32)
    return out, jnp.ones(out.shape[:3], jnp.bool_)


def _vgg16_convs(dtype, rngs: nnx.Rngs) -> nnx.List:
    convs, cin = [], 3
    for block in VGG16_WIDTHS:
        for cout in block:
            convs.append(_conv(cin, cout, 3, 1, bias=True, dtype=dtype, rngs=rngs))
            cin = cout
    return nnx.List(convs)


def _vgg16_block(convs: tuple[nnx.Conv, ...], x: jax.Array, *, pool: bool) -> jax.Array:
    for conv in convs:
        x = jax.nn.relu(conv(x))
    return max_pool_2d(x, 2, 2, 0) if pool else x


def _vgg16_conv5(features: nnx.List, x: jax.Array, remat: bool = False) -> jax.Array:
    """Normalised [B, H, W, 3] -> conv5_3 + ReLU [B, H//16, W//16, 512] (no final max-pool); each block
    rematerialised when `remat`."""
    i = 0
    for b, block in enumerate(VGG16_WIDTHS):
        run = functools.partial(_vgg16_block, pool=b < len(VGG16_WIDTHS) - 1)
        x = remat_lib.apply(run, tuple(features[i:i + len(block)]), x, enabled=remat)
        i += len(block)
    return x


class VGG16Trunk(nnx.Module):
    """torchvision VGG16 `features` minus the last max-pool, plus a 3x3 conv embedder (DAVEnet)."""

    def __init__(self, *, out_features: int = 1024, freeze_trunk: bool = False, remat: bool = False,
                 dtype=jnp.float32, rngs: nnx.Rngs):
        _check_out_features(out_features, "VGG16Trunk")
        self.out_features = int(out_features)
        self.freeze_trunk = bool(freeze_trunk)
        self.remat = bool(remat)
        self.features = _vgg16_convs(dtype, rngs)
        self.embedder = _conv(512, self.out_features, 3, 1, bias=True, dtype=dtype, rngs=rngs,
                              torch_default=True)

    capabilities = MAP_IMAGE
    from_config = classmethod(_trunk_from_config)

    def trunk(self, image: jax.Array) -> jax.Array:
        """image [B, H, W, 3] (uint8 or normalised float) -> conv5_3 + ReLU [B, H//16, W//16, 512]."""
        x = normalize_pixels(image, "VGG16Trunk")
        _check_size(image, 16, "VGG16Trunk")
        return _vgg16_conv5(self.features, x, self.remat)

    def __call__(self, image: jax.Array, mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """image [B, H, W, 3] -> (map [B, H//16, W//16, out_features] float32, mask of ones bool [B, H//16, W//16]).
        `mask` (example mask [B]) is unused: every op is per example."""
        del mask
        return _finish(self.trunk(image), self.embedder, self.freeze_trunk)


class Bottleneck(nnx.Module):
    """torchvision ResNet v1.5 bottleneck: 1x1 BN ReLU, 3x3(stride) BN ReLU, 1x1(x4) BN, + shortcut, ReLU."""

    def __init__(self, in_channels: int, width: int, stride: int, *, dtype=jnp.float32, rngs: nnx.Rngs,
                 frozen: bool = False):
        out = 4 * width
        self.conv1 = _conv(in_channels, width, 1, 1, bias=False, dtype=dtype, rngs=rngs)
        self.bn1 = _batch_norm(width, rngs, frozen)
        self.conv2 = _conv(width, width, 3, stride, bias=False, dtype=dtype, rngs=rngs)
        self.bn2 = _batch_norm(width, rngs, frozen)
        self.conv3 = _conv(width, out, 1, 1, bias=False, dtype=dtype, rngs=rngs)
        self.bn3 = _batch_norm(out, rngs, frozen)
        if stride != 1 or in_channels != out:
            self.downsample_conv = _conv(in_channels, out, 1, stride, bias=False, dtype=dtype, rngs=rngs)
            self.downsample_bn = _batch_norm(out, rngs, frozen)
        else:
            self.downsample_conv = None
            self.downsample_bn = None

    def __call__(self, x: jax.Array, bn_mask: jax.Array | None = None) -> jax.Array:
        """x [B, H, W, in] -> [B, ceil(H/stride), ceil(W/stride), 4 * width] (float32 BatchNorm outputs);
        `bn_mask` [B, 1, 1, 1] bool: the rows BatchNorm statistics come from (None: all)."""
        y = jax.nn.relu(self.bn1(self.conv1(x), mask=bn_mask))
        y = jax.nn.relu(self.bn2(self.conv2(y), mask=bn_mask))
        y = self.bn3(self.conv3(y), mask=bn_mask)
        if self.downsample_conv is None:
            short = x
        else:
            short = self.downsample_bn(self.downsample_conv(x), mask=bn_mask)
        return jax.nn.relu(y + short)


def _init_resnet_body(module: nnx.Module, depth: int, dtype, rngs: nnx.Rngs, frozen: bool = False) -> int:
    """Create conv1, bn1, layer1..layer4 on `module` (torchvision names); returns the output width 2048."""
    module.conv1 = _conv(3, 64, 7, 2, bias=False, dtype=dtype, rngs=rngs)
    module.bn1 = _batch_norm(64, rngs, frozen)
    cin = 64
    stages = []
    for width, blocks, stride in resnet_stages(depth):
        stage = []
        for j in range(blocks):
            stage.append(Bottleneck(cin, width, stride if j == 0 else 1, dtype=dtype, rngs=rngs, frozen=frozen))
            cin = 4 * width
        stages.append(nnx.List(stage))
    module.layer1, module.layer2, module.layer3, module.layer4 = stages
    return cin


def _resnet_stem(stem: tuple[nnx.Conv, nnx.BatchNorm], x: jax.Array, bn_mask: jax.Array | None) -> jax.Array:
    conv, bn = stem
    return max_pool_2d(jax.nn.relu(bn(conv(x), mask=bn_mask)), 3, 2, 1)


def _resnet_body(module: nnx.Module, image: jax.Array, where: str, mask: jax.Array | None = None,
                 remat: bool = False) -> jax.Array:
    """image [B, H, W, 3] -> layer4 output; BatchNorm statistics over the rows of `mask` [B] bool (None: all);
    the stem and each bottleneck rematerialised when `remat`."""
    x = normalize_pixels(image, where)
    _check_size(image, 32, where)
    if mask is not None and jnp.shape(mask) != image.shape[:1]:
        raise ValueError(f"{where}: mask must be the example mask [{image.shape[0]}] bool, got shape "
                         f"{jnp.shape(mask)}.")
    bn_mask = None if mask is None else jnp.asarray(mask, bool)[:, None, None, None]
    x = remat_lib.apply(_resnet_stem, (module.conv1, module.bn1), x, bn_mask, enabled=remat)
    for stage in (module.layer1, module.layer2, module.layer3, module.layer4):
        for block in stage:
            x = remat_lib.call(block, x, bn_mask, enabled=remat)
    return x


class ResNetTrunk(nnx.Module):
    """torchvision ResNet-50/101/152 minus avgpool / fc, plus a 1x1 conv embedder (ResDAVEnet).

    Attribute names mirror torchvision's (conv1, bn1, layer1..layer4, Bottleneck conv1..bn3,
    downsample_conv / downsample_bn for torchvision's downsample.0 / downsample.1).
    """

    def __init__(self, *, depth: int = 50, out_features: int = 1024, freeze_trunk: bool = False,
                 remat: bool = False, dtype=jnp.float32, rngs: nnx.Rngs):
        _check_out_features(out_features, type(self).__name__)
        self.depth = int(depth)
        self.out_features = int(out_features)
        self.freeze_trunk = bool(freeze_trunk)
        self.remat = bool(remat)
        cin = _init_resnet_body(self, self.depth, dtype, rngs)
        self.embedder = _conv(cin, self.out_features, 1, 1, bias=True, dtype=dtype, rngs=rngs,
                              torch_default=True)

    capabilities = MAP_IMAGE
    from_config = classmethod(_trunk_from_config)

    def trunk(self, image: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """image [B, H, W, 3] (uint8 or normalised float) -> layer4 output [B, ceil(H/32), ceil(W/32), 2048];
        in train mode BatchNorm statistics come from the rows where `mask` [B] bool is True (None: all)."""
        return _resnet_body(self, image, type(self).__name__, mask, self.remat)

    def __call__(self, image: jax.Array, mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """image [B, H, W, 3], optional example mask [B] bool (see `trunk`) -> (map [B, H/32, W/32,
        out_features] float32, mask of ones bool [B, H/32, W/32])."""
        return _finish(self.trunk(image, mask), self.embedder, self.freeze_trunk)


class ResNet50Trunk(ResNetTrunk):
    """`ResNetTrunk` with depth 50 (ResDAVEnet's image model)."""

    def __init__(self, *, out_features: int = 1024, freeze_trunk: bool = False, remat: bool = False,
                 dtype=jnp.float32, rngs: nnx.Rngs):
        super().__init__(depth=50, out_features=out_features, freeze_trunk=freeze_trunk, remat=remat, dtype=dtype,
                         rngs=rngs)


class ResNetFeatures(nnx.Module):
    """Frozen torchvision ResNet-`depth` without fc: global-average-pooled layer4 vector (platalea §1.3).

    BatchNorms start in eval mode (running averages). Parameter names as `ResNetTrunk`, no embedder.
    """

    def __init__(self, *, depth: int = 152, dtype=jnp.float32, rngs: nnx.Rngs):
        self.depth = int(depth)
        self.out_features = _init_resnet_body(self, self.depth, dtype, rngs, frozen=True)

    def __call__(self, image: jax.Array) -> jax.Array:
        """image [B, H, W, 3] (uint8 or normalised float, H, W >= 32) -> float32 [B, 2048]."""
        return jnp.mean(_resnet_body(self, image, "ResNetFeatures").astype(jnp.float32), axis=(1, 2))


class VGG16Features(nnx.Module):
    """torchvision VGG16 up to fc7 + ReLU (the classifier without its last Linear): [B, hidden_features].

    `hidden_features` is 4096 in torchvision (smaller values only make tests cheap)."""

    def __init__(self, *, hidden_features: int = 4096, dtype=jnp.float32, rngs: nnx.Rngs):
        _check_out_features(hidden_features, "VGG16Features")
        self.out_features = int(hidden_features)
        self.features = _vgg16_convs(dtype, rngs)
        linear = dict(kernel_init=nnx.initializers.normal(0.01), bias_init=nnx.initializers.zeros_init(),
                      dtype=dtype, rngs=rngs)
        self.fc6 = nnx.Linear(512 * VGG_POOL * VGG_POOL, self.out_features, **linear)
        self.fc7 = nnx.Linear(self.out_features, self.out_features, **linear)

    def __call__(self, image: jax.Array) -> jax.Array:
        """image [B, H, W, 3] (uint8 or normalised float, H, W >= 32) -> fc7 after ReLU, float32 [B, hidden]."""
        x = normalize_pixels(image, "VGG16Features")
        _check_size(image, 32, "VGG16Features")
        x = max_pool_2d(_vgg16_conv5(self.features, x), 2, 2, 0)
        x = adaptive_avg_pool_2d(x, VGG_POOL, VGG_POOL)
        x = jax.nn.relu(self.fc6(x.reshape(x.shape[0], -1)))
        return jax.nn.relu(self.fc7(x)).astype(jnp.float32)


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

