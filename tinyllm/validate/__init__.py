"""Reading files that tinyllm did not write itself, or that someone may have changed since.

Every file tinyllm loads goes through this package first:

* :mod:`.files` - read a file safely (it must be a regular file of bounded
  size: never a FIFO, a device or a directory), parse JSON strictly (UTF-8, no
  NaN/Infinity, bounded nesting), and keep every path *named inside a file*
  within the directory that file came from (:func:`contained`);
* :mod:`.fields` - :class:`Fields`, typed reads from one JSON object;
* :mod:`.schema` - one schema per file kind (checkpoint config, state and
  manifest; Hugging Face config and shard index; tokenizer files; token-file
  metadata; run-settings files): the type and range of every field, a missing
  key named with its file.

Anything wrong is a :class:`FileError` (a :class:`~tinyllm.data.DataError`,
so a ``ValueError``) whose message reads ``FILE: what is wrong``; the command
line prints it as ``error: FILE: what is wrong`` and exits with status 1.
"""
from .errors import DataError, FileError
from .fields import Fields
from .files import MAX_DEPTH, MAX_JSON_BYTES, contained, load_json, parse_json, read_file, regular_file
from .schema import (
                     LIMITS,
                     check_char_tokenizer,
                     check_ckpt_config,
                     check_finite,
                     check_weight_dtypes,
                     check_hf_bert_config,
                     check_hf_config,
                     check_hf_index,
                     check_hf_tokenizer,
                     check_manifest,
                     check_metrics_rows,
                     check_model_config,
                     check_optimizer,
                     check_pair_vocabs,
                     check_run_settings,
                     check_state,
                     check_token_meta,
)

__all__ = ["DataError", "FileError", "Fields", "LIMITS", "MAX_DEPTH", "MAX_JSON_BYTES", "check_char_tokenizer",
           "check_ckpt_config", "check_finite", "check_hf_bert_config", "check_hf_config", "check_hf_index",
           "check_pair_vocabs", "check_hf_tokenizer", "check_manifest",
           "check_metrics_rows", "check_model_config", "check_optimizer", "check_run_settings", "check_state",
           "check_token_meta", "check_weight_dtypes", "contained", "load_json", "parse_json", "read_file",
           "regular_file"]
