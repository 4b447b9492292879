"""PyTorch reference of vgs_jax's platalea dual encoder, for the paired benchmarks only.

The same work as `platalea_gru` + `linear` image encoder + `platalea_hinge_loss` + Adam
(anchor-implementations §1.4-1.6): Conv1d(39 -> 64, kernel 6, stride 2, no bias) -> `nn.GRU`
(bidirectional, `num_layers`, padded batch: PyTorch's fastest CPU option, 2-4x faster than packed
sequences here) -> vectorial attention (Linear(2H, 128) tanh Linear(128, 2H), softmax over the valid
frames per dimension) -> L2 norm; image: Linear(2048, 2H) -> L2 norm; one extra scalar parameter
stands for our learned log-temperature, so the parameter counts are equal (the benches assert it).
Needs only torch and NumPy (`pip install -e '.[bench]'`).
"""
import numpy as np
import torch
from torch import nn


class PlataleaDualEncoder(nn.Module):
    def __init__(self, hidden: int, num_layers: int, num_features: int = 39, image_dim: int = 2048,
                 conv_channels: int = 64, kernel: int = 6, stride: int = 2, attention_hidden: int = 128):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv1d(num_features, conv_channels, kernel, stride, bias=False)
        self.gru = nn.GRU(conv_channels, hidden, num_layers, batch_first=True, bidirectional=True)
        self.att_hidden = nn.Linear(2 * hidden, attention_hidden)
        self.att_out = nn.Linear(attention_hidden, 2 * hidden)
        self.image = nn.Linear(image_dim, 2 * hidden)
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def encode_speech(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """audio [B, T, F], lengths [B] -> L2-normalised [B, 2H]."""
        x = self.conv(audio.transpose(1, 2)).transpose(1, 2)
        conv_lengths = torch.clamp((lengths - self.kernel) // self.stride + 1, min=0)
        mask = (torch.arange(x.shape[1])[None, :] < conv_lengths[:, None])[..., None]
        h, _ = self.gru(x)
        h = h * mask
        logits = self.att_out(torch.tanh(self.att_hidden(h)))
        alpha = torch.softmax(logits.masked_fill(~mask, torch.finfo(logits.dtype).min), dim=1) * mask
        return nn.functional.normalize((alpha * h).sum(1), dim=-1)

    def forward(self, audio, lengths, image):
        return self.encode_speech(audio, lengths), nn.functional.normalize(self.image(image), dim=-1)


def platalea_hinge_loss(z_speech: torch.Tensor, z_image: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Sum over off-diagonal (i, j) of relu(margin + S_ij - S_ii) + relu(margin + S_ij - S_jj), / B^2."""
    sim = z_speech @ z_image.T
    diag = sim.diagonal()
    neg = ~torch.eye(sim.shape[0], dtype=torch.bool)
    cost = torch.relu(margin + sim - diag[:, None]) + torch.relu(margin + sim - diag[None, :])
    return (cost * neg).sum() / sim.shape[0] ** 2


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def train_step_work(hidden: int, num_layers: int, batch: dict, threads: int, seed: int = 0):
    """(info, run) for the paired harness: `run()` is one forward + backward + Adam step."""
    from paired import random_batch
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    data = {k: torch.from_numpy(v) for k, v in random_batch(**batch).items()}
    model = PlataleaDualEncoder(hidden, num_layers, num_features=data["audio"].shape[-1],
                                image_dim=data["image"].shape[-1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def run():
        opt.zero_grad(set_to_none=True)
        loss = platalea_hinge_loss(*model(data["audio"], data["lengths"], data["image"]))
        loss.backward()
        opt.step()
        if not np.isfinite(loss.item()):
            raise FloatingPointError(f"torch loss became {loss.item()}")

    return {"params": num_params(model), "torch": torch.__version__, "threads": torch.get_num_threads()}, run


def speech_params(model: PlataleaDualEncoder) -> int:
    """Parameters of the speech tower (conv, GRU stack, attention)."""
    return sum(num_params(m) for m in (model.conv, model.gru, model.att_hidden, model.att_out))


def embedding_work(speech: dict, batches: dict, threads: int, seed: int = 0):
    """(info, run) for the paired harness: run() embeds every batch of `embedding_bench.batches`
    with the speech tower in eval mode, no gradients."""
    from embedding_bench import make_batches
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = PlataleaDualEncoder(speech["hidden"], speech["num_layers"], stride=speech["conv_stride"],
                                kernel=speech["conv_kernel"], attention_hidden=speech["attention_hidden"]).eval()
    data = [(torch.from_numpy(a), torch.from_numpy(n)) for a, n in make_batches(**batches)]

    def run():
        with torch.inference_mode():
            for audio, lengths in data:
                model.encode_speech(audio, lengths).numpy()

    return {"params": speech_params(model)}, run
