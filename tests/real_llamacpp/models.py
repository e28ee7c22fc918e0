"""A tiny random-weight Llama target/draft pair with one tokenizer, as GGUF files and HF folders.

Nothing is downloaded. The GGUF files are written with llama.cpp's own gguf-py (the ``gguf-py``
folder of the llama.cpp tree that .ci/llamacpp_build.sh keeps beside its ``bin``), so the file
layout is the one that llama.cpp build reads; each model's folder also gets a ``config.json`` and
a ``tokenizer.json`` with the same token -> id map, which is what specplan plans and exports from.

Tokenizer: llama.cpp's SentencePiece-style ("llama") vocabulary: <unk> <s> </s>, the 256 byte
tokens (byte fallback: any text encodes), then every prefix of "▁word" for the words of a fixed
text, scored so longer pieces merge first.

Weights: random, seeded. Random init gives near-uniform next-token distributions, which never pass
llama-server's draft p-min, so the output matrix is scaled (LOGIT_SCALE) to make the greedy choice
confident; the blocks' output projections are scaled down (BLOCK_SCALE) so the residual stream is
mostly the token embedding and a draft made of the target's first block, sharing its embedding,
norm and output matrix, agrees with the target part of the time.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TEXT = ("speculative decoding lets a small draft model propose tokens that the large target model "
        "verifies in one batch so the server emits several tokens per step when the draft agrees "
        "with the target and the plan predicts how many tokens each round accepts on this machine")
LOGIT_SCALE = 30.0
BLOCK_SCALE = 0.05
SPACE = "\u2581"  # SentencePiece's word-start marker


@dataclass(frozen=True)
class Shape:
    """A Llama model's sizes (counts)."""

    layers: int
    hidden: int = 512  # multiples of 256 so that every llama-quantize type takes the rows
    heads: int = 8
    kv_heads: int = 4
    ffn: int = 1536
    context: int = 2048


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    """(tokens, scores, token types) in llama.cpp's SPM convention (types: 1 normal, 2 unknown, 3 control, 6 byte)."""
    tokens, types = ["<unk>", "<s>", "</s>"], [2, 3, 3]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [6] * 256
    pieces: list[str] = []
    for word in dict.fromkeys(TEXT.split()):
        full = SPACE + word
        pieces += [p for p in (full[:i] for i in range(1, len(full) + 1)) if p not in pieces]
    for word in dict.fromkeys(TEXT.split()):  # mid-word pieces, so words also merge without a space
        pieces += [p for p in (word[:i] for i in range(1, len(word) + 1)) if p not in pieces]
    tokens += pieces
    types += [1] * len(pieces)
    scores = [0.0] * 259 + [float(len(p)) for p in pieces]  # SPM merges the highest-scored pair first
    return tokens, scores, types


def _weights(shape: Shape, vocab: int, seed: int) -> dict[str, np.ndarray]:
    """GGUF tensor name -> float32 array in (out features, in features) order."""
    rng = np.random.default_rng(seed)
    head_dim = shape.hidden // shape.heads

    def mat(rows: int, cols: int, scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * scale / np.sqrt(cols)).astype(np.float32)

    w = {"token_embd.weight": rng.standard_normal((vocab, shape.hidden)).astype(np.float32),
         "output_norm.weight": np.ones(shape.hidden, np.float32),
         "output.weight": mat(vocab, shape.hidden, LOGIT_SCALE)}
    for i in range(shape.layers):
        b = f"blk.{i}."
        w |= {b + "attn_norm.weight": np.ones(shape.hidden, np.float32),
              b + "attn_q.weight": mat(shape.heads * head_dim, shape.hidden),
              b + "attn_k.weight": mat(shape.kv_heads * head_dim, shape.hidden),
              b + "attn_v.weight": mat(shape.kv_heads * head_dim, shape.hidden),
              b + "attn_output.weight": mat(shape.hidden, shape.heads * head_dim, BLOCK_SCALE),
              b + "ffn_norm.weight": np.ones(shape.hidden, np.float32),
              b + "ffn_gate.weight": mat(shape.ffn, shape.hidden),
              b + "ffn_up.weight": mat(shape.ffn, shape.hidden),
              b + "ffn_down.weight": mat(shape.hidden, shape.ffn, BLOCK_SCALE)}
    return w


def write_gguf(gguf, path: Path, name: str, shape: Shape, weights: dict[str, np.ndarray]) -> None:
    """One F32 GGUF file (llama architecture) with the shared vocabulary."""
    tokens, scores, types = vocabulary()
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.hidden)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.ffn)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_rope_dimension_count(shape.hidden // shape.heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    for tensor, array in weights.items():
        writer.add_tensor(tensor, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_folder(folder: Path, shape: Shape) -> None:
    """config.json (Hugging Face Llama) and tokenizer.json (the same token -> id map as the GGUF)."""
    tokens, _, types = vocabulary()
    folder.mkdir(parents=True, exist_ok=True)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": len(tokens),
              "hidden_size": shape.hidden, "intermediate_size": shape.ffn, "num_hidden_layers": shape.layers,
              "num_attention_heads": shape.heads, "num_key_value_heads": shape.kv_heads,
              "head_dim": shape.hidden // shape.heads, "max_position_embeddings": shape.context,
              "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False,
              "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}
    (folder / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    special = [{"id": i, "content": t, "special": True} for i, (t, k) in enumerate(zip(tokens, types)) if k in (2, 3)]
    tokenizer = {"version": "1.0", "added_tokens": special,
                 "model": {"type": "BPE", "byte_fallback": True, "unk_token": "<unk>",
                           "vocab": {t: i for i, t in enumerate(tokens)}, "merges": []}}
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")


@dataclass(frozen=True)
class Pair:
    """The written pair: HF folders (for specplan) and F32 GGUF files (for llama.cpp)."""

    target_dir: Path
    draft_dir: Path
    target_gguf: Path
    draft_gguf: Path


def make_pair(llama_src: Path, out: Path, target: Shape = Shape(layers=6), seed: int = 0) -> Pair:
    """Target with ``target.layers`` blocks; draft = its first block with its embedding, norm and output."""
    sys.path.insert(0, str(llama_src / "gguf-py"))
    try:
        import gguf
    finally:
        sys.path.remove(str(llama_src / "gguf-py"))
    vocab = len(vocabulary()[0])
    weights = _weights(target, vocab, seed)
    draft = Shape(layers=1, hidden=target.hidden, heads=target.heads, kv_heads=target.kv_heads, ffn=target.ffn,
                  context=target.context)
    draft_weights = {k: v for k, v in weights.items() if not k.startswith("blk.") or k.startswith("blk.0.")}
    pair = Pair(out / "target", out / "draft", out / "target-F32.gguf", out / "draft-F32.gguf")
    for folder, path, shape, w, name in ((pair.target_dir, pair.target_gguf, target, weights, "tiny-target"),
                                         (pair.draft_dir, pair.draft_gguf, draft, draft_weights, "tiny-draft")):
        write_folder(folder, shape)
        write_gguf(gguf, path, name, shape, w)
    return pair
