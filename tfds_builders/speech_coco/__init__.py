"""speech_coco: SPEECH-COCO synthesised spoken MSCOCO captions (importing registers it)."""

from .speech_coco_dataset_builder import (
    MANUAL_DOWNLOAD_INSTRUCTIONS, SPEAKERS, Builder, SpeechCocoConfig, words_from_timecode)

__all__ = ["Builder", "SpeechCocoConfig", "SPEAKERS", "MANUAL_DOWNLOAD_INSTRUCTIONS",
           "words_from_timecode"]
