"""Decoding: from a model's next-token scores to text.

* ``sampling.py``    - choosing one token from a row of logits: greedy, temperature, top-k, top-p
* ``generation.py``  - :func:`generate` / :func:`generate_stream` over any :class:`Decoder`, with its KV cache
* ``stream.py``      - token ids to text as they arrive (whole UTF-8 characters only)
* ``beam.py``        - greedy and beam search for an encoder-decoder (``tinyllm.models.Seq2Seq``)
"""
from .generation import Cache, Decoder, generate, generate_stream, next_logits
from .sampling import check_sampling_args, sample_from, sample_next, softmax, top_k_filter, top_p_filter
from .stream import TextStreamer, start_tokens, stream_text

__all__ = ["Cache", "Decoder", "TextStreamer", "check_sampling_args", "generate", "generate_stream",
           "next_logits", "sample_from", "sample_next", "softmax", "start_tokens", "stream_text", "top_k_filter",
           "top_p_filter"]
