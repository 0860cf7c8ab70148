"""iVideoGPT: a compressive video tokenizer and a LLaMA-style transformer as an interactive world model."""

from sb3_worldmodels.ivideogpt.config import (
    TokenizerConfig,
    TransformerConfig,
    make_tokenizer_config,
    make_transformer_config,
)
from sb3_worldmodels.ivideogpt.model import IVideoGPT
from sb3_worldmodels.ivideogpt.tokenizer import CompressiveTokenizer, VectorQuantizer
from sb3_worldmodels.ivideogpt.transformer import LlamaTransformer

__all__ = [
    "CompressiveTokenizer",
    "IVideoGPT",
    "LlamaTransformer",
    "TokenizerConfig",
    "TransformerConfig",
    "VectorQuantizer",
    "make_tokenizer_config",
    "make_transformer_config",
]
