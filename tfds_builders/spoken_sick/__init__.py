"""spoken_sick: the SICK sentence pairs spoken by espeak-ng (importing registers the builder)."""

from .spoken_sick_dataset_builder import ENTAILMENT, SPEAKERS, Builder, SpokenSickConfig, read_sick

__all__ = ["Builder", "SpokenSickConfig", "ENTAILMENT", "SPEAKERS", "read_sick"]
