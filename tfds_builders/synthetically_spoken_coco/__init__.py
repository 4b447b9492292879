"""synthetically_spoken_coco: MSCOCO captions spoken by Google TTS (importing registers it)."""

from .synthetically_spoken_coco_dataset_builder import (
    MANUAL_DOWNLOAD_INSTRUCTIONS, Builder, SyntheticallySpokenCocoConfig, decode_mp3_16k)

__all__ = ["Builder", "SyntheticallySpokenCocoConfig", "MANUAL_DOWNLOAD_INSTRUCTIONS",
           "decode_mp3_16k"]
