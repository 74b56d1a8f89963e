"""What a Hugging Face model directory says about chatting, read the way the converter reads it.

gguf-py's `SpecialVocab` is what convert_hf_to_gguf.py uses to put the chat template and the
special tokens into the GGUF (tokenizer_config.json, chat_template.jinja / .json, tokenizer.json,
config.json, in its order of precedence). Reading the source through it keeps the Modelfile's
template and stop tokens the same as the GGUF's. Token ids become strings through tokenizer.json's
added tokens, or the token strings tokenizer_config.json names.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path


@dataclass
class HFChatInfo:
    chat_template: str | None = None
    bos_token: str | None = None
    eos_token: str | None = None
    add_bos_token: bool | None = None  # tokenizer_config.json's, when it says


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _token_text(value) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def hf_chat_info(directory: str | Path) -> HFChatInfo:
    """Chat template and BOS/EOS token strings of a HF directory (all None when it says nothing)."""
    from gguf.vocab import SpecialVocab

    directory = Path(directory)
    quiet = logging.getLogger("gguf")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # SpecialVocab warns about tokenizer details edgepack does not use
    try:
        vocab = SpecialVocab(directory, load_merges=False, special_token_types=("bos", "eos"))
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        vocab = None  # a malformed tokenizer file: fall back to what tokenizer_config.json names
    finally:
        quiet.setLevel(level)
    template = vocab.chat_template if vocab is not None else None
    if isinstance(template, list):  # named templates: the "default" one is the chat template
        template = next((t.get("template") for t in template if isinstance(t, dict) and t.get("name") == "default"),
                        None)
    added = {t.get("id"): t.get("content") for t in _json(directory / "tokenizer.json").get("added_tokens") or []
             if isinstance(t, dict)}
    config = _json(directory / "tokenizer_config.json")

    def token(kind: str) -> str | None:
        token_id = vocab.special_token_ids.get(kind) if vocab is not None else None
        text = added.get(token_id) if token_id is not None else None
        return text if isinstance(text, str) else _token_text(config.get(f"{kind}_token"))

    add_bos = config.get("add_bos_token")
    return HFChatInfo(template if isinstance(template, str) else None, token("bos"), token("eos"),
                      add_bos if isinstance(add_bos, bool) else None)
