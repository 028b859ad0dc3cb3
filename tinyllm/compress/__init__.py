"""Making models cheaper to adapt and to run: LoRA adapters on disk (``adapter``),
int8 weight quantization (``quantize``) and magnitude pruning (``prune``).

The LoRA layer itself is :class:`tinyllm.nn.lora.LoRALinear`; this package holds
what works on whole checkpoints.
"""
