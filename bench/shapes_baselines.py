"""spoken_shapes 2.0: statistics and reference listeners per split (no audio, no training).

    python bench/shapes_baselines.py --config=small [--languages=en,hi,ja]

Plans the config exactly as the builder does (scenes, caption meanings, texts, consistent
images; `plan_v2`), prints its statistics (`stats_v2`) and, per evaluation split, the expected
speech->image R@1/5/10 and median rank of the oracle ceiling, colour-only, shape-only and
colour-shape-pair listeners and the transcript TF-IDF baseline (`baselines`). Listeners read
text or meaning, not audio, so test and test_unseen_speakers score the same.
"""

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tfds_builders.spoken_shapes import baselines, builder_v2, stats_v2  # noqa: E402
from tfds_builders.spoken_shapes.spoken_shapes_dataset_builder import Builder  # noqa: E402

EVAL_SPLITS = ("validation", "test", "test_compositional", "test_unseen_speakers")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="small", help="tiny, quick, small or large.")
    parser.add_argument("--languages", default="en,hi,ja")
    args = parser.parse_args()
    if args.config not in Builder.V1_CONFIG_NAMES:
        parser.error(f"--config={args.config!r}: choose one of {list(Builder.V1_CONFIG_NAMES)} "
                     "(the language configs of a size share its images).")
    config = Builder.builder_configs[args.config]
    languages = tuple(args.languages.split(","))
    start = time.time()
    plans = builder_v2.plan_config(config)
    print(f"spoken_shapes/{args.config}:2.0.0 planned in {time.time() - start:.1f} s\n")
    print(stats_v2.format_statistics(stats_v2.statistics(plans, config.seed, languages)))
    print()
    print(baselines.format_tables(baselines.evaluate(plans, EVAL_SPLITS, languages)))


if __name__ == "__main__":
    main()
