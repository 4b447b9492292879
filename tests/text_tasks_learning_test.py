"""Learning test of the multi-task model (retrieval + CTC, configs/shapes_mtl_asr.py): a short training on
`spoken_shapes/quick` transcribes its validation speech far better than at random initialisation.

At random initialisation the greedy transcription is noise (CER 102% after 6 steps of `:tiny`). Measured
with these settings (one CPU device, seed 123): 100 steps of 16 reach test speech -> image R@10 19.6% (chance
10%), so retrieval is not asserted here (tests/learning_test.py covers it for the same encoder); 200 steps
reach test CER 23.7% and R@10 44.4%; STEPS = 80 reach validation CER 51.0% (bound: 80%).
"""

from vgs_jax import config_lib
from vgs_jax import text_evaluation
from vgs_jax import train

STEPS = 80


def test_multitask_model_learns_to_transcribe(quick_shapes_data_dir, tmp_path):
    config = config_lib.load_config("configs/shapes_mtl_asr.py:tiny,v1")
    with config.unlocked():
        config.dataset.name = "spoken_shapes/quick:1.0.0"
        config.dataset.data_dir = quick_shapes_data_dir
        config.num_train_steps = STEPS
        config.batch_size = 16
        config.optimizer.lr_max = 2e-3
        config.optimizer.warmup_steps = 10
        config.model.speech.hidden = 64
        config.model.speech.attention_hidden = 32
        config.log_every_steps = 10
        config.eval_every_steps = config.checkpoint_every_steps = 1000
    workdir = str(tmp_path / "mtl")
    metrics = train.train_and_evaluate(config, workdir)
    assert metrics["train/asr_loss"] < 2.0, metrics  # about 3.2 per character at step 25
    text = text_evaluation.evaluate_checkpoint(workdir, split="validation")
    print(text)
    assert text["error_rate"] < 0.8, text
