#!/usr/bin/env python3
"""Reference embeddings of all-MiniLM-L6-v2 from an independent implementation:
a plain numpy BERT forward pass over the safetensors weights (no candle, no
torch), mean pooling over tokens, L2 normalisation. tests/local_embeddings.rs
checks spider-bench's candle implementation against these numbers.

    pip install numpy tokenizers
    python3 tools/minilm_reference.py MODEL_DIR > tests/data/minilm_reference.json

MODEL_DIR holds model.safetensors, tokenizer.json and config.json (as
`spider-bench models fetch all-minilm-l6-v2` installs them).
"""
import json, math, struct, sys
import numpy as np
from tokenizers import Tokenizer

TEXTS = [
    "How many singers do we have?",
    "List the names of all customers in Oslo, ordered by age.",
    "SELECT count(*) FROM singer WHERE age > 30",
    "What is the average, minimum, and maximum age of all singers from France?",
]


def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        if t["dtype"] != "F32":
            continue  # position_ids (I64) are not weights
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).reshape(t["shape"]).astype(np.float64)
    return out


def layer_norm(x, w, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def embed(w, ids, heads=12):
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][: len(ids)]
    x = x + w["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    d = x.shape[1] // heads
    for i in range(6):
        p = f"encoder.layer.{i}."
        lin = lambda h, name: h @ w[p + name + ".weight"].T + w[p + name + ".bias"]
        q, k, v = (lin(x, "attention.self." + n).reshape(len(ids), heads, d).transpose(1, 0, 2) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attn = scores / scores.sum(-1, keepdims=True)
        ctx = (attn @ v).transpose(1, 0, 2).reshape(len(ids), heads * d)
        x = layer_norm(lin(ctx, "attention.output.dense") + x, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        h = gelu(lin(x, "intermediate.dense"))
        x = layer_norm(lin(h, "output.dense") + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    v = x.mean(0)
    return v / np.linalg.norm(v)


def main():
    d = sys.argv[1]
    w = load(f"{d}/model.safetensors")
    tok = Tokenizer.from_file(f"{d}/tokenizer.json")
    # tokenizer.json pads to 128; sentence-transformers pools real tokens only
    # and truncates at 256.
    tok.no_padding()
    tok.enable_truncation(256)
    out = []
    for t in TEXTS:
        ids = tok.encode(t).ids[:256]
        out.append({"text": t, "ids": ids, "embedding": [float(x) for x in embed(w, np.array(ids))]})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
