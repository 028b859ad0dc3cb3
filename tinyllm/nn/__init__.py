"""Layers for building transformers: ``Module`` and ``Parameter``, the basic
layers, multi-head attention, the Transformer block, initialization and losses."""
from . import init
from .attention import KVCache, MultiHeadAttention, SelfAttentionFunction, self_attention
from .layers import (GELU, MLP, Dropout, Embedding, LayerNorm, LearnedPositionalEmbedding, Linear,
                     LinearFunction, ReLU, SinusoidalPositionalEncoding, linear)
from .losses import (BinaryCrossEntropyWithLogits, binary_cross_entropy, binary_cross_entropy_with_logits,
                     contrastive_loss, cross_entropy, huber_loss, l1_loss, l2_normalize, mse_loss, nll_loss,
                     smooth_l1_loss)
from .module import Module, ModuleList, Parameter, Sequential, functional_call
from .transformer import TransformerBlock

__all__ = [
    "BinaryCrossEntropyWithLogits", "binary_cross_entropy_with_logits", "contrastive_loss", "cross_entropy",
    "l2_normalize", "mse_loss",
    "GELU", "MLP", "Dropout", "Embedding", "KVCache", "LayerNorm", "LearnedPositionalEmbedding", "Linear",
    "LinearFunction", "Module", "ModuleList", "MultiHeadAttention", "Parameter", "ReLU", "SelfAttentionFunction",
    "Sequential", "SinusoidalPositionalEncoding", "TransformerBlock", "functional_call", "init", "linear",
    "self_attention",
]
from .attention import CrossAttention, KVCacheStack, MemoryKV  # noqa: E402  (cross-attention, decoding caches)

__all__ += ["CrossAttention", "KVCacheStack", "MemoryKV"]

from . import activations  # noqa: E402  (PyTorch's activation modules; GELU there takes approximate=)
from .activations import *  # noqa: E402,F401,F403

__all__ += [n for n in activations.__all__ if n not in __all__] + ["binary_cross_entropy", "huber_loss", "l1_loss",
                                                                   "nll_loss", "smooth_l1_loss"]
