"""flickr8k_audio: Flickr8K images + Flickr Audio Caption Corpus (importing registers it)."""

from .flickr8k_audio_dataset_builder import Builder, Flickr8kAudioConfig

__all__ = ["Builder", "Flickr8kAudioConfig"]
