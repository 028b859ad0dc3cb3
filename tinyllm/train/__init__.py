"""Training: the loop and everything around it.

Reading order:

* ``config.py``    - :class:`TrainConfig`, the presets, config files
* ``data.py``      - corpus and tokenizer to batch sources and validation sets
* ``loop.py``      - :class:`Trainer`: the step, evaluation, checkpoints, resume, early stopping
* ``metrics.py``   - metrics.jsonl, the progress line, sparklines, loss.png
* ``pretrain.py``  - ``tinyllm train``: GPT or BERT pre-training, end to end
* ``finetune.py``  - ``tinyllm finetune``: a classifier head, or LM training on prompt/response pairs
* ``restore.py``   - a model and tokenizer rebuilt from a checkpoint, checked
* ``evaluate.py``  - loss/perplexity and accuracy/confusion matrix on a data file
"""
from .config import PRESETS, TrainConfig, read_config_file, resolve
from .loop import Trainer, TrainingDiverged, TrainingInterrupted, TrainResult
from .pretrain import pretrain
from .restore import Restored, restore_model

__all__ = ["PRESETS", "Restored", "TrainConfig", "TrainResult", "Trainer", "TrainingDiverged", "TrainingInterrupted",
           "pretrain", "read_config_file", "resolve", "restore_model"]
