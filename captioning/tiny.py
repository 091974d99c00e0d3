"""A tiny randomly initialised BLIP captioner, saved like a hub model, for tests and smoke runs.

It goes through exactly the loading path of the real model (config.json, weights, processor
files from save_pretrained). Its captions are random words, which is what the pipeline must
cope with anyway (empty captions, stray colons).
"""

from __future__ import annotations

from pathlib import Path

# Words chosen so random generation produces punctuation the sanitiser must handle.
_WORDS = [
    "a", "an", "the", "of", "on", "in", "with", "and", "photo", "picture", "cat", "dog", "man",
    "woman", "car", "red", "blue", "green", "sitting", "standing", "street", "grass", "water",
    "sky", "tree", "house", ":", ",", ".", "'", "-", "16:9",
]
_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def build_tiny_blip(folder: str | Path, *, seed: int = 0, image_size: int = 32, hidden: int = 32) -> Path:
    """Write a tiny BLIP (model + processor) to ``folder`` and return it."""
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.txt"
    vocab = list(_SPECIAL) + list(dict.fromkeys(_WORDS)) + [f"w{i}" for i in range(16)] + ["##s", "##ing"]
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # BLIP uses a BERT tokenizer whose bos is the added [DEC] token (first positional
    # argument is the vocab file in transformers 4 and 5 alike).
    tok = BertTokenizer(str(vocab_file), bos_token="[DEC]")
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": image_size, "width": image_size}),
                              tokenizer=tok)
    text = {
        "vocab_size": len(tok), "hidden_size": hidden, "encoder_hidden_size": hidden,
        "intermediate_size": 2 * hidden, "num_hidden_layers": 2, "num_attention_heads": 2,
        "max_position_embeddings": 64, "bos_token_id": tok.bos_token_id, "pad_token_id": tok.pad_token_id,
        "sep_token_id": tok.sep_token_id, "eos_token_id": tok.sep_token_id,
        # A large init makes captions depend on the image (the default vision init is ~0).
        "initializer_range": 0.5,
    }
    vision = {
        "hidden_size": hidden, "intermediate_size": 2 * hidden, "num_hidden_layers": 2,
        "num_attention_heads": 2, "image_size": image_size, "patch_size": 8, "initializer_range": 0.5,
    }
    config = BlipConfig(text_config=text, vision_config=vision, projection_dim=hidden)
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config).eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def random_blip_large():
    """(model, processor): the BLIP-large architecture with random weights, built in memory.

    For speed measurements where the real weights cannot be downloaded: the cost does not
    depend on the weight values, except that random captions run to the token limit (the
    worst case; real captions usually stop earlier).
    """
    import tempfile

    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.txt"
        # bert-base-uncased has 30522 entries; [DEC] makes 30523 (the model reserves 30524).
        vocab = list(_SPECIAL) + [f"tok{i}" for i in range(30522 - len(_SPECIAL))]
        vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
        tok = BertTokenizer(str(vocab_file), bos_token="[DEC]")
    processor = BlipProcessor(image_processor=BlipImageProcessor(), tokenizer=tok)  # 384 px, CLIP mean/std
    text = {
        "vocab_size": 30524, "hidden_size": 768, "encoder_hidden_size": 1024, "intermediate_size": 3072,
        "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 512,
        "bos_token_id": tok.bos_token_id, "pad_token_id": 0, "sep_token_id": tok.sep_token_id,
        "eos_token_id": tok.sep_token_id,
    }
    vision = {
        "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
        "image_size": 384, "patch_size": 16, "initializer_range": 0.02,
    }
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=vision, projection_dim=256))
    return model.eval(), processor
