"""places_audio: Places205 images with English and/or Hindi spoken captions (registers it)."""

from .places_audio_dataset_builder import (
    LANGUAGES, MANUAL_DOWNLOAD_INSTRUCTIONS, Builder, PlacesAudioConfig, parse_alignment)

__all__ = ["Builder", "PlacesAudioConfig", "LANGUAGES", "MANUAL_DOWNLOAD_INSTRUCTIONS",
           "parse_alignment"]
