"""PyTorch references of vgs_jax's DAVEnet, ResDAVEnet and Transformer speech encoders, for the paired
benchmarks only (`bench/encoder_pairs_bench.py`).

The work of `bench/encoders_bench.py`'s step: speech encoder forward in train mode (BatchNorm batch
statistics, ResDAVEnet temporal jitter) -> pooled embedding [B, E] (conv maps: mean over the valid final
frames) -> platalea hinge loss against fixed random targets -> backward -> Adam. Same layers and parameter
counts as ours (the bench asserts them); the references' layouts:

- DAVEnet (Harwath et al. 2018): BatchNorm over one channel, conv1 (40 x 1) as a kernel-1 Conv1d over 40
  channels (the same weights), conv2..conv5 (kernels 11, 17, 17, 17, padding k // 2) each + ReLU + max-pool
  (3, stride 2, padding 1).
- ResDAVEnet (Harwath et al. 2020, no quantisers): conv1 (kernel 1, no bias) BN ReLU, four stages of basic
  blocks (conv k stride 2/1, BN, ReLU, conv k, BN, 1x1 strided shortcut + BN), temporal jitter after conv1
  and layer1 ("reference" mode: one shift of -1/0/+1 per time step, shared by the batch, probabilities
  p, 1 - 2p, p). The
  reference's unused input `batchnorm1` is left out, as in ours.
- Transformer (platalea `SpeechEncoderTransformer`): Conv1d (39 -> 64, kernel 6, stride 2, no bias),
  Linear to d_model, `nn.TransformerEncoder` (post-norm, ReLU, dropout 0) with a key padding mask,
  vectorial attention pooling.

PyTorch's BatchNorm counts padded frames in its statistics (ours: valid frames only); the arithmetic is the
same. Needs only torch and NumPy (`pip install -e '.[bench]'`).
"""
import numpy as np
import torch
from torch import nn

from torch_platalea import num_params, platalea_hinge_loss


def _downsample(lengths: torch.Tensor) -> torch.Tensor:
    """Valid frames after one stride-2 halving (kernel odd, padding k // 2): ceil(L / 2)."""
    return (lengths + 1) // 2


def _masked_mean(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[B, C, T] frames, [B] valid counts -> [B, C] mean over the valid frames."""
    mask = (torch.arange(h.shape[-1])[None, :] < lengths[:, None]).to(h.dtype)
    return (h * mask[:, None]).sum(-1) / mask.sum(-1, keepdim=True).clamp(min=1)


class Davenet(nn.Module):
    def __init__(self, widths, in_features: int = 40, kernels=(1, 11, 17, 17, 17)):
        super().__init__()
        self.input_norm = nn.BatchNorm2d(1)
        ins = (in_features,) + tuple(widths[:-1])
        self.convs = nn.ModuleList(nn.Conv1d(i, o, k, padding=k // 2) for i, o, k in zip(ins, widths, kernels))
        self.pool = nn.MaxPool1d(3, 2, padding=1)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """audio [B, T, F], lengths [B] -> pooled [B, C]."""
        x = self.input_norm(audio[:, None])[:, 0].transpose(1, 2)
        h = torch.relu(self.convs[0](x))
        for conv in self.convs[1:]:
            h = self.pool(torch.relu(conv(h)))
            lengths = _downsample(lengths)
        return _masked_mean(h, lengths)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, kernel: int):
        super().__init__()
        self.conv1 = nn.Conv1d(cin, cout, kernel, stride, padding=kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm1d(cout)
        self.conv2 = nn.Conv1d(cout, cout, kernel, padding=kernel // 2, bias=False)
        self.bn2 = nn.BatchNorm1d(cout)
        self.shortcut = (nn.Sequential(nn.Conv1d(cin, cout, 1, stride, bias=False), nn.BatchNorm1d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(h)))))
        return torch.relu(y + self.shortcut(h))


class ResDavenet(nn.Module):
    def __init__(self, widths, depths, kernel: int, jitter: float, in_features: int = 40):
        super().__init__()
        self.jitter = jitter
        self.conv1 = nn.Conv1d(in_features, widths[0], 1, bias=False)
        self.bn1 = nn.BatchNorm1d(widths[0])
        self.stages = nn.ModuleList(
            nn.Sequential(*(BasicBlock(widths[i] if j == 0 else widths[i + 1], widths[i + 1], 2 if j == 0 else 1,
                                       kernel) for j in range(depths[i]))) for i in range(4))

    def _jitter(self, h: torch.Tensor) -> torch.Tensor:
        shift = torch.multinomial(torch.tensor([self.jitter, 1 - 2 * self.jitter, self.jitter]), h.shape[-1],
                                  replacement=True) - 1
        return h[..., (torch.arange(h.shape[-1]) + shift).clamp(0, h.shape[-1] - 1)]

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self._jitter(torch.relu(self.bn1(self.conv1(audio.transpose(1, 2)))))
        for i, stage in enumerate(self.stages):
            h = stage(h)
            lengths = _downsample(lengths)
            if i == 0:
                h = self._jitter(h)
        return _masked_mean(h, lengths)


class Transformer(nn.Module):
    def __init__(self, in_features: int, conv_channels: int, conv_kernel: int, conv_stride: int, d_model: int,
                 num_heads: int, num_layers: int, ff_dim: int, attention_hidden: int):
        super().__init__()
        self.kernel, self.stride = conv_kernel, conv_stride
        self.conv = nn.Conv1d(in_features, conv_channels, conv_kernel, conv_stride, bias=False)
        self.proj = nn.Linear(conv_channels, d_model)
        layer = nn.TransformerEncoderLayer(d_model, num_heads, ff_dim, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.att_hidden = nn.Linear(d_model, attention_hidden)
        self.att_out = nn.Linear(attention_hidden, d_model)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.proj(self.conv(audio.transpose(1, 2)).transpose(1, 2))
        conv_lengths = torch.clamp((lengths - self.kernel) // self.stride + 1, min=0)
        valid = torch.arange(h.shape[1])[None, :] < conv_lengths[:, None]
        h = self.encoder(h, src_key_padding_mask=~valid)
        logits = self.att_out(torch.tanh(self.att_hidden(h)))
        mask = valid[..., None]
        alpha = torch.softmax(logits.masked_fill(~mask, torch.finfo(logits.dtype).min), dim=1) * mask
        return (alpha * h).sum(1)


def build(encoder: str, speech: dict, num_features: int) -> nn.Module:
    """The reference module for `encoder` with our config's `model.speech` fields."""
    if encoder == "davenet":
        return Davenet(tuple(speech.get("widths", (128, 256, 512, 512, 1024))), num_features)
    if encoder == "resdavenet":
        return ResDavenet(tuple(speech["widths"]), tuple(speech["depths"]), speech["kernel"], speech["jitter"],
                          num_features)
    if encoder == "transformer":
        keys = ("conv_channels", "conv_kernel", "conv_stride", "d_model", "num_heads", "num_layers", "ff_dim",
                "attention_hidden")
        return Transformer(num_features, **{k: speech[k] for k in keys})
    raise ValueError(f"torch_encoders: no reference for {encoder!r}; use davenet, resdavenet or transformer.")


def train_step_work(encoder: str, speech: dict, batch: dict, threads: int, seed: int = 0):
    """(info, run) for the paired harness: run() = forward (train mode) + hinge loss to fixed random targets
    + backward + Adam. `batch`: `paired.random_batch` arguments (its image_dim = the embedding size)."""
    from paired import random_batch
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    data = random_batch(**batch)
    audio, lengths = torch.from_numpy(data["audio"]), torch.from_numpy(data["lengths"])
    target = torch.from_numpy(data["image"])
    model = build(encoder, speech, audio.shape[-1]).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def run():
        opt.zero_grad(set_to_none=True)
        loss = platalea_hinge_loss(model(audio, lengths), target)
        loss.backward()
        opt.step()
        if not np.isfinite(loss.item()):
            raise FloatingPointError(f"torch loss became {loss.item()}")

    return {"params": num_params(model), "torch": torch.__version__}, run
