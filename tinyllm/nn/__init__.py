"""Layers for building transformers: ``Module`` and ``Parameter``, the basic
layers, multi-head attention, the Transformer block, initialization and losses."""
from . import init
from .attention import KVCache, MultiHeadAttention, SelfAttentionFunction, self_attention
from .layers import (GELU, MLP, Dropout, Embedding, LayerNorm, LearnedPositionalEmbedding, Linear,
                     LinearFunction, ReLU, SinusoidalPositionalEncoding, linear)
from .losses import (BinaryCrossEntropyWithLogits, binary_cross_entropy_with_logits, contrastive_loss,
                     cross_entropy, l2_normalize, mse_loss)
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
