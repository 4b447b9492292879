"""What an encoder can do, declared on the encoder: the one interface of speech and image towers.

Every encoder in `registry.SPEECH_ENCODERS` / `registry.IMAGE_ENCODERS` has

    capabilities: Capabilities      (a property, or a class attribute when fixed: what the module outputs)
    out_features: int               (embedding / map channel width)
    from_config(sub_config, size, *, dtype, rngs)   (classmethod: `config.model.speech` or
                                    `config.model.image`; size = input features per frame for
                                    speech, out_features for images)
    __call__                        pooled towers: -> [B, E]; frame-map towers: -> (map, map mask)

and, as its capabilities declare: `frame_outputs(features, mask)` (per-layer frames, named
`capabilities.frame_outputs`, plus "pooled" and "mask"), `encode(features, mask, *, key)` and
`update_codebooks(aux)` (frame-map speech towers), and `pool.weights(frames, mask)` over the last
frame output (attention pooling: "vectorial" weights [B, T', D], "scalar" [B, T']).

Training, evaluation, analysis and benches ask a built model (`model.speech_encoder.capabilities`,
or a `dual_encoder.Template`'s copies), never the config's encoder name.
"""

import dataclasses
import inspect

POOLED = "pooled"
FRAME_MAP = "frame_map"
ATTENTION_KINDS = ("vectorial", "scalar")


@dataclasses.dataclass(frozen=True)
class FrameClock:
    """Where a layer's frames sit on the input (feature) frame clock.

    Output frame j is centred on input frame ``stride * j + (kernel - 1) / 2``: it reads input
    frames ``[stride j, stride j + kernel)`` after a VALID conv front end; `kernel` is 1 for
    centred stages (frame j centred on input frame ``stride * j``, e.g. DAVEnet's halvings and
    frame outputs repeated back to the input rate).
    """

    stride: int = 1
    kernel: int = 1

    def __post_init__(self):
        if self.stride < 1 or self.kernel < 1:
            raise ValueError(f"FrameClock: stride ({self.stride}) and kernel ({self.kernel}) must be >= 1.")

    def centre(self, j):
        """Centre of output frame j in input frames (float; j may be an array)."""
        return self.stride * j + (self.kernel - 1) / 2.0


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """An encoder's declared outputs.

    output: POOLED (one vector per input) or FRAME_MAP (a map with its mask; the dual encoder
      pools it by masked mean, and matchmap similarities use it).
    frame_outputs: names of the per-layer frames `frame_outputs` returns, in forward order (the
      last one is what attention pooling reads); () when the encoder has none (image towers).
    frame_clock: the clock of those per-layer frames (None without frame outputs).
    map_clock: the clock of a speech frame map (None for pooled or image towers).
    attention: "vectorial", "scalar" or None: the kind of the pooling's attention weights.
    quantizers: ((name, clock), ...) of the enabled vector quantisers (e.g. ("quant2",
      FrameClock(2))), whose codes `encode`'s aux holds under the name.
    """

    output: str
    frame_outputs: tuple[str, ...] = ()
    frame_clock: FrameClock | None = None
    map_clock: FrameClock | None = None
    attention: str | None = None
    quantizers: tuple[tuple[str, FrameClock], ...] = ()

    def __post_init__(self):
        if self.output not in (POOLED, FRAME_MAP):
            raise ValueError(f"Capabilities.output must be {POOLED!r} or {FRAME_MAP!r}, got {self.output!r}.")
        if self.attention not in (None, *ATTENTION_KINDS):
            raise ValueError(f"Capabilities.attention must be None or one of {ATTENTION_KINDS}, got "
                             f"{self.attention!r}.")
        if bool(self.frame_outputs) != (self.frame_clock is not None):
            raise ValueError("Capabilities: frame_outputs and frame_clock go together.")

    @property
    def has_map(self) -> bool:
        return self.output == FRAME_MAP


def speech_from_config(cls, speech_config, in_features: int, *, dtype, rngs):
    """`from_config` of speech encoders: `config.model.speech`'s fields are the keyword-only
    arguments of `cls.__init__` (besides dtype and rngs); an unknown field is an error naming the
    valid ones."""
    kwargs = dict(speech_config or {})
    allowed = {n for n, p in inspect.signature(cls.__init__).parameters.items()
               if p.kind == inspect.Parameter.KEYWORD_ONLY} - {"rngs", "dtype"}
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ValueError(
            f"build_dual_encoder: config.model.speech has fields {unknown} that {cls.__name__} does not "
            f"take; valid fields: {sorted(allowed)}.")
    return cls(in_features, **kwargs, dtype=dtype, rngs=rngs)
