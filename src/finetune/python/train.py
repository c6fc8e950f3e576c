"""LoRA fine-tuning of a GGUF chat model, for `spider-bench finetune train`.

Usage: python train.py --config CONFIG.json

The config is a JSON object with these keys (all required; null where allowed):
  base_gguf         path to the base model GGUF (e.g. Qwen2.5-Coder Instruct, Q4_K_M); weights
                    and tokenizer are read from it and dequantized
  train_file        JSONL, one {"messages": [{"role": ..., "content": ...}, ...]} per line; the
                    last message is the assistant answer the model is trained on
  val_file          JSONL in the same format, or null (no evaluation)
  out_dir           output folder (created if missing)
  rank, alpha       LoRA rank and alpha (the update is scaled by alpha / rank)
  dropout           LoRA dropout
  learning_rate     peak learning rate (AdamW)
  epochs            passes over the training data
  max_steps         null, or a cap on the number of optimizer steps
  batch_size        examples per micro-batch
  grad_accum        micro-batches per optimizer step
  max_len           examples longer than this many tokens (prompt + answer) are skipped and counted
  seed              seeds LoRA init, dropout and the data order
  checkpoint_every  optimizer steps between checkpoints (0 or null: none)
  eval_every        optimizer steps between evaluations (0 or null: only at start and end)
  device            "auto" | "cpu" | "cuda"
  threads           CPU threads for torch, or null for torch's default
  resume            continue from out_dir/checkpoint if there is one
  packing           true: examples whose prompts share a prefix (one database's schema) are
                    trained in one sequence that computes the prefix once (exact; see make_plan)
  dtype             "auto" | "f32" | "bf16": the dtype of the frozen base weights (LoRA weights,
                    optimizer state and the loss are always f32). auto: bf16 on CUDA with bf16
                    support and on CPUs with AMX, else f32 (without AMX, bf16 measured slower).

Stdout carries only progress events, one JSON object per line (start, resume, eval, step,
checkpoint, verify, done, error); everything else goes to stderr. All events are also written
to out_dir/train_log.json.

Outputs: out_dir/adapter.gguf (llama.cpp LoRA adapter), out_dir/peft (PEFT adapter folder),
out_dir/train_log.json, out_dir/checkpoint/state.pt.

Training choices: loss is the mean cross entropy over answer tokens (the assistant content
followed by <|im_end|>), prompt tokens are masked; logits are computed only at the positions
that predict answer tokens. AdamW (betas 0.9/0.999, weight decay 0), gradient norm clipped to
1.0, learning rate warmed up linearly over the first 5% of steps (at least 1, at most 100) and
then decayed linearly towards 0 at the last step. With packing (the default), a micro-batch is
one sequence of up to batch_size examples that share their prompt's prefix (Spider: one
database's schema): the prefix is computed once, and a 4D attention mask and position ids give
every example exactly the attention and positions it has alone, so the loss and gradients are
those of the unpacked batch while the shared tokens cost once. Without packing, micro-batches
hold examples of similar length, right-padded.
"""

import argparse
import json
import math
import os
import sys
import time

# Stdout is reserved for events: keep a private handle on it and send fd 1 (Python prints and
# native libraries alike) to stderr.
_EVENT_OUT = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
os.dup2(2, 1)
sys.stdout = sys.stderr

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

END_TOKEN = "<|im_end|>"
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# PEFT / transformers module name -> llama.cpp tensor name inside block N
GGUF_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
BUCKET_WINDOW = 32  # batches per length-sorting window
MIN_SHARED_PREFIX = 32  # tokens a pack's examples must share
PACK_TOKENS = 2048  # longest pack, in tokens
CLIP_NORM = 1.0
CONFIG_KEYS = [
    "base_gguf", "train_file", "val_file", "out_dir", "rank", "alpha", "dropout",
    "learning_rate", "epochs", "max_steps", "batch_size", "grad_accum", "max_len", "seed",
    "checkpoint_every", "eval_every", "device", "threads", "resume", "dtype", "packing",
]
# keys that must match for a checkpoint to be resumed
RESUME_KEYS = [
    "base_gguf", "rank", "alpha", "dropout", "learning_rate", "epochs", "max_steps",
    "batch_size", "grad_accum", "max_len", "seed", "dtype", "packing",
]


class TrainError(Exception):
    pass


class Log:
    """Writes events to stdout (one JSON line each) and keeps them for train_log.json."""

    def __init__(self):
        self.events = []

    def emit(self, event, **fields):
        obj = {"event": event}
        obj.update(fields)
        self.events.append(obj)
        _EVENT_OUT.write(json.dumps(obj) + "\n")
        _EVENT_OUT.flush()

    def write_file(self, path):
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.events, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)


def warn(msg):
    print(msg, file=sys.stderr, flush=True)


def rnd(x, n=6):
    return None if x is None else float(round(x, n))


# ---------------------------------------------------------------------------------------------
# config

def load_config(path):
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    missing = [k for k in CONFIG_KEYS if k not in cfg]
    if missing:
        raise TrainError("config is missing keys: " + ", ".join(missing))

    def need_int(k, lo, nullable=False):
        v = cfg[k]
        if v is None and nullable:
            return
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise TrainError(f"config {k} must be an integer >= {lo}" + (" or null" if nullable else ""))

    def need_num(k, lo):
        v = cfg[k]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < lo:
            raise TrainError(f"config {k} must be a number >= {lo}")

    for k in ("rank", "epochs", "batch_size", "grad_accum", "max_len"):
        need_int(k, 1)
    need_int("seed", 0)
    need_int("max_steps", 1, nullable=True)
    need_int("threads", 1, nullable=True)
    need_int("checkpoint_every", 0, nullable=True)
    need_int("eval_every", 0, nullable=True)
    need_num("alpha", 0)
    need_num("dropout", 0)
    need_num("learning_rate", 0)
    if cfg["dropout"] >= 1:
        raise TrainError("config dropout must be < 1")
    if cfg["device"] not in ("auto", "cpu", "cuda"):
        raise TrainError('config device must be "auto", "cpu" or "cuda"')
    if cfg["dtype"] not in ("auto", "f32", "bf16"):
        raise TrainError('config dtype must be "auto", "f32" or "bf16"')
    for k in ("resume", "packing"):
        if not isinstance(cfg[k], bool):
            raise TrainError(f"config {k} must be true or false")
    for k in ("base_gguf", "train_file", "out_dir"):
        if not isinstance(cfg[k], str) or not cfg[k]:
            raise TrainError(f"config {k} must be a path")
    if cfg["val_file"] is not None and not isinstance(cfg["val_file"], str):
        raise TrainError("config val_file must be a path or null")
    for k in ("base_gguf", "train_file", "val_file"):
        if cfg[k] is not None and not os.path.isfile(cfg[k]):
            raise TrainError(f"{k} not found: {cfg[k]}")
    return cfg


# ---------------------------------------------------------------------------------------------
# model and tokenizer

def cpu_has_amx_bf16():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split(":", 1)[1].split()
    except OSError:
        pass
    return False


def pick_device_dtype(cfg, torch):
    device = cfg["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise TrainError("device cuda requested but torch sees no CUDA device")
    dtype = cfg["dtype"]
    if dtype == "auto":
        if device == "cuda":
            dtype = "bf16" if torch.cuda.is_bf16_supported() else "f32"
        else:
            # measured on a 2-core Xeon with avx512_bf16 but no AMX: oneDNN's bf16 matmuls ran at
            # ~60% of MKL's f32 speed and a bf16 training step took ~3.5x longer, so only AMX
            # CPUs get bf16
            dtype = "bf16" if cpu_has_amx_bf16() else "f32"
    return device, dtype


def gguf_metadata(path):
    """Architecture, chat template and {tensor name: (ne tuple)} of a GGUF file."""
    import gguf

    reader = gguf.GGUFReader(path, "r")

    def field_str(key):
        f = reader.get_field(key)
        if f is None:
            return None
        return f.contents()

    arch = field_str("general.architecture")
    template = field_str("tokenizer.chat_template")
    shapes = {t.name: tuple(int(x) for x in t.shape) for t in reader.tensors}
    return reader, arch, template, shapes


def gguf_location(cfg):
    """(folder, file name) of the base GGUF, as transformers' from_pretrained takes them."""
    path = os.path.abspath(cfg["base_gguf"])
    return os.path.dirname(path), os.path.basename(path)


def load_tokenizer(cfg):
    from transformers import AutoTokenizer

    d, name = gguf_location(cfg)
    return AutoTokenizer.from_pretrained(d, gguf_file=name)


def load_model_and_tokenizer(cfg, torch, device, dtype):
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(cfg)
    d, name = gguf_location(cfg)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32)
    if dtype == "bf16":
        model = model.to(torch.bfloat16)
    model.config.use_cache = False
    model.to(device)
    return model, tok


def check_template(tok, gguf_template):
    if not gguf_template:
        raise TrainError("base GGUF has no tokenizer.chat_template")
    if tok.chat_template != gguf_template:
        raise TrainError("tokenizer chat template differs from the GGUF's tokenizer.chat_template")
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    want = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    if text != want:
        raise TrainError("chat template is not ChatML as expected; rendered: " + repr(text))
    end_id = tok.convert_tokens_to_ids(END_TOKEN)
    if end_id is None or end_id == tok.unk_token_id or tok.encode(END_TOKEN, add_special_tokens=False) != [end_id]:
        raise TrainError(f"{END_TOKEN} is not a single special token")
    return end_id


# ---------------------------------------------------------------------------------------------
# data

def read_examples(path, tok, max_len, what):
    """Returns ([(ids, n_prompt)], skipped_too_long). ids = prompt + answer + <|im_end|>."""
    out, skipped = [], 0
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                msgs = row["messages"]
                if not isinstance(msgs, list) or len(msgs) < 2:
                    raise ValueError("messages must be a list of at least 2")
                for m in msgs:
                    if m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
                        raise ValueError("each message needs role system|user|assistant and string content")
                if msgs[-1]["role"] != "assistant":
                    raise ValueError("last message must be the assistant answer")
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise TrainError(f"{what} line {lineno}: {e}")
            prompt_msgs = [{"role": m["role"], "content": m["content"]} for m in msgs[:-1]]
            prompt = tok.apply_chat_template(prompt_msgs, add_generation_prompt=True, tokenize=False)
            p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
            a_ids = tok(msgs[-1]["content"] + END_TOKEN, add_special_tokens=False)["input_ids"]
            ids = p_ids + a_ids
            if len(ids) > max_len:
                skipped += 1
                continue
            out.append((ids, len(p_ids)))
    return out, skipped


def common_prefix(a, b, limit):
    n = 0
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def prefix_groups(examples):
    """Example indices in groups whose prompts share a long token prefix (in Spider: one
    database's system message and schema). Prompts are sorted, and neighbours stay in one
    group while they share at least half of the shorter prompt (and MIN_SHARED_PREFIX tokens):
    so a group does not reach across databases that share only the system message."""
    order = sorted(range(len(examples)), key=lambda i: examples[i][0][:examples[i][1]])
    groups = []
    for k, i in enumerate(order):
        if k > 0:
            (a, na), (b, nb) = examples[order[k - 1]], examples[i]
            p = common_prefix(a, b, min(na, nb))
            if p >= MIN_SHARED_PREFIX and p >= 0.5 * min(na, nb):
                groups[-1].append(i)
                continue
        groups.append([i])
    return groups


def shared_prefix(examples, members):
    """The tokens a pack's examples share, stopping before any member's last prompt token (so
    that every example keeps the position that predicts its first answer token)."""
    if len(members) < 2:
        return 0
    first = examples[members[0]][0]
    shared = min(examples[i][1] for i in members) - 1
    for i in members[1:]:
        shared = common_prefix(first, examples[i][0], shared)
    return shared


def make_plan(examples, lengths, cfg):
    """Optimizer steps as lists of micro-batches, all epochs (max_steps is applied by the caller). A micro-batch is a list of packs;
    a pack is (shared prefix length, example indices): one sequence in which the examples'
    shared prompt prefix is computed once and each example's remaining tokens attend to it and
    to themselves only (exactly the attention each example has alone).

    Packing on: a micro-batch is one pack of up to batch_size examples with a common prefix
    (at most PACK_TOKENS tokens long). Off: batch_size packs of one example, of similar lengths.
    Seeded: per epoch the examples are shuffled inside their groups and the packs (or
    batches) shuffled; grad_accum micro-batches make an optimizer step, which never spans two
    epochs."""
    import random

    bs, ga = cfg["batch_size"], cfg["grad_accum"]
    rng = random.Random(cfg["seed"])
    groups = prefix_groups(examples) if cfg["packing"] else None
    plan = []
    for epoch in range(1, cfg["epochs"] + 1):
        micro = []
        if groups is not None:
            for members in groups:
                members = members[:]
                rng.shuffle(members)
                pack = []
                for i in members:
                    if pack and (len(pack) == bs or pack_tokens(examples, pack + [i]) > PACK_TOKENS):
                        micro.append([(shared_prefix(examples, pack), pack)])
                        pack = []
                    pack.append(i)
                micro.append([(shared_prefix(examples, pack), pack)])
        else:
            idx = list(range(len(examples)))
            rng.shuffle(idx)
            w = bs * BUCKET_WINDOW
            for s in range(0, len(idx), w):
                chunk = sorted(idx[s:s + w], key=lambda i: lengths[i])
                micro.extend([(0, [i]) for i in chunk[b:b + bs]] for b in range(0, len(chunk), bs))
        rng.shuffle(micro)
        for s in range(0, len(micro), ga):
            plan.append((epoch, micro[s:s + ga]))
    return plan


def computed_tokens(steps, lengths):
    """The tokens these steps compute: a pack's shared prefix once (what the training time follows)."""
    return sum(sum(lengths[i] for i in pack) - shared * (len(pack) - 1)
               for _, micro in steps for mb in micro for shared, pack in mb)


def plan_run(examples, cfg):
    """Each example's length, the run's steps (all epochs, up to max_steps), and the tokens the
    first epoch computes."""
    lengths = [len(ids) for ids, _ in examples]
    full_plan = make_plan(examples, lengths, cfg)
    plan = full_plan[:cfg["max_steps"]] if cfg["max_steps"] is not None else full_plan
    return lengths, plan, computed_tokens([s for s in full_plan if s[0] == 1], lengths)


def training_examples(cfg, tok, gguf_template):
    """The chat template's end token id, and the training examples with the number left out as
    too long: what training and --plan-only both read."""
    end_id = check_template(tok, gguf_template)
    train_ex, skipped = read_examples(cfg["train_file"], tok, cfg["max_len"], "train_file")
    if not train_ex:
        raise TrainError("no training examples (all skipped or file empty)")
    return end_id, train_ex, skipped


def plan_only(cfg, log):
    """The plan without the model's weights or any training (`--plan-only`): `finetune check`
    estimates the training time from its computed tokens, which packing makes depend on how
    much of their prompts the examples share (on Spider's train questions, 26% of the
    examples' tokens with the plain prompt, 45% with retrieved examples in each prompt)."""
    _, _, gguf_template, _ = gguf_metadata(cfg["base_gguf"])
    _, train_ex, skipped = training_examples(cfg, load_tokenizer(cfg), gguf_template)
    lengths, plan, computed_per_epoch = plan_run(train_ex, cfg)
    log.emit("done", examples=len(train_ex), skipped_too_long=skipped, steps=len(plan),
             tokens_per_epoch=sum(lengths), computed_tokens_per_epoch=computed_per_epoch,
             computed_tokens=computed_tokens(plan, lengths))


def pack_tokens(examples, members):
    shared = shared_prefix(examples, members)
    return shared + sum(len(examples[i][0]) - shared for i in members)


def pack_layout(examples, shared, members):
    """The pack's tokens, their positions, the span of each token's own part (the attention it
    may see besides the prefix), and (position, target) for every answer token."""
    tokens, positions, owner, targets = [], [], [], []
    first = examples[members[0]][0]
    tokens.extend(first[:shared])
    positions.extend(range(shared))
    owner.extend([-1] * shared)
    for k, i in enumerate(members):
        ids, n_prompt = examples[i]
        start = len(tokens)
        tokens.extend(ids[shared:])
        positions.extend(range(shared, len(ids)))
        owner.extend([k] * (len(ids) - shared))
        # token p of the example predicts token p+1; answers are ids[n_prompt:]
        for p in range(n_prompt - 1, len(ids) - 1):
            targets.append((start + p - shared, ids[p + 1]))
    return tokens, positions, owner, targets


def collate(examples, packs, pad_id, torch, device):
    """Right-padded packs as one batch: input ids, position ids and a boolean attention mask
    (batch, 1, L, L), and (row, position, target) of the positions predicting answer tokens.
    When every pack holds one example, position ids and mask are None: causal attention with
    right padding needs no mask, and without one PyTorch's fused causal kernel runs instead
    of materialising (L x L) attention weights in every layer."""
    layouts = [pack_layout(examples, shared, members) for shared, members in packs]
    packed = any(len(members) > 1 for _, members in packs)
    L = max(len(t) for t, _, _, _ in layouts)
    inp = torch.full((len(layouts), L), pad_id, dtype=torch.long)
    pos = torch.zeros((len(layouts), L), dtype=torch.long) if packed else None
    mask = torch.zeros((len(layouts), 1, L, L), dtype=torch.bool) if packed else None
    causal = torch.ones((L, L), dtype=torch.bool).tril() if packed else None
    rows, cols, tgt = [], [], []
    for r, (tokens, positions, owner, targets) in enumerate(layouts):
        n = len(tokens)
        inp[r, :n] = torch.tensor(tokens, dtype=torch.long)
        if packed:
            pos[r, :n] = torch.tensor(positions, dtype=torch.long)
            own = torch.tensor(owner, dtype=torch.long)
            # a token sees the shared prefix and the earlier tokens of its own example
            same = (own[:, None] == own[None, :]) | (own[None, :] == -1)
            mask[r, 0, :n, :n] = same & causal[:n, :n]
            # padding sees itself only, so that no row of the mask is empty
            mask[r, 0, range(n, L), range(n, L)] = True
        for p, t in targets:
            rows.append(r)
            cols.append(p)
            tgt.append(t)
    t = lambda x: torch.tensor(x, dtype=torch.long, device=device)
    on = lambda x: x.to(device) if x is not None else None
    return inp.to(device), on(pos), on(mask), t(rows), t(cols), t(tgt)


def batch_loss_sum(causal_lm, batch, torch):
    """Summed cross entropy over the answer tokens; logits only where they are needed."""
    inp, pos, mask, rows, cols, tgt = batch
    hidden = causal_lm.model(input_ids=inp, position_ids=pos, attention_mask=mask, use_cache=False).last_hidden_state
    h = hidden[rows, cols]
    logits = causal_lm.lm_head(h).float()
    return torch.nn.functional.cross_entropy(logits, tgt, reduction="sum")


def evaluate(causal_lm, peft_model, examples, cfg, pad_id, torch, device):
    if not examples:
        return None
    peft_model.eval()
    total, n = 0.0, 0
    bs = cfg["batch_size"]
    if cfg["packing"]:
        groups = [g[s:s + bs] for g in prefix_groups(examples) for s in range(0, len(g), bs)]
        micro = [[(shared_prefix(examples, g), g)] for g in groups]
    else:
        order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]))
        micro = [[(0, [i]) for i in order[s:s + bs]] for s in range(0, len(order), bs)]
    with torch.no_grad():
        for packs in micro:
            batch = collate(examples, packs, pad_id, torch, device)
            total += float(batch_loss_sum(causal_lm, batch, torch))
            n += int(batch[5].numel())
    peft_model.train()
    return total / max(n, 1)


# ---------------------------------------------------------------------------------------------
# checkpoints

def file_sha256(path):
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def rng_state(torch, np, random):
    st = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st, torch, np, random):
    torch.set_rng_state(st["torch"])
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def save_checkpoint(path, state, torch):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# adapter output

def lora_modules(peft_model):
    """[(layer index, 'self_attn.q_proj', module)] for every LoRA linear layer."""
    import re

    out = []
    pat = re.compile(r"(?:^|\.)layers\.(\d+)\.((?:self_attn|mlp)\.\w+)$")
    for name, mod in peft_model.named_modules():
        if hasattr(mod, "lora_A") and "default" in getattr(mod, "lora_A", {}):
            m = pat.search(name)
            if not m or m.group(2) not in GGUF_NAMES:
                raise TrainError(f"unexpected LoRA module {name}")
            out.append((int(m.group(1)), m.group(2), mod))
    return out


def write_adapter_gguf(path, peft_model, cfg, arch, base_shapes):
    """llama.cpp LoRA adapter: per base tensor W (ne = [in, out]) a pair
    W.lora_a with ne = [in, r] (numpy [r, in] = PEFT lora_A) and
    W.lora_b with ne = [r, out] (numpy [out, r] = PEFT lora_B); llama.cpp adds
    (alpha / r) * B(A x), r read from lora_b's ne[0]."""
    import gguf
    import numpy as np

    tmp = path + ".tmp"
    w = gguf.GGUFWriter(tmp, arch)
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(cfg["alpha"]))
    names = []
    for layer, mod_name, mod in sorted(lora_modules(peft_model), key=lambda t: (t[0], t[1])):
        base = f"blk.{layer}.{GGUF_NAMES[mod_name]}.weight"
        a = mod.lora_A["default"].weight.detach().float().cpu().numpy().astype(np.float32)
        b = mod.lora_B["default"].weight.detach().float().cpu().numpy().astype(np.float32)
        if base not in base_shapes:
            raise TrainError(f"base GGUF has no tensor {base}")
        n_in, n_out = base_shapes[base][0], base_shapes[base][1]
        if a.shape != (cfg["rank"], n_in) or b.shape != (n_out, cfg["rank"]):
            raise TrainError(f"LoRA shapes {a.shape} {b.shape} do not fit {base} ne={base_shapes[base]}")
        w.add_tensor(base + ".lora_a", np.ascontiguousarray(a))
        w.add_tensor(base + ".lora_b", np.ascontiguousarray(b))
        names.append(base)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, path)
    return names


def verify_adapter(path, peft_model, cfg, base_reader, torch):
    """For block 0's q_proj: base W (dequantized from the base GGUF) + (alpha/r) * B @ A, with A and
    B read back from adapter.gguf, must equal PEFT's merged weight."""
    import copy
    import gguf
    import numpy as np

    name = "blk.0.attn_q.weight"
    mod = next(m for layer, n, m in lora_modules(peft_model) if layer == 0 and n == "self_attn.q_proj")
    ad = {t.name: t for t in gguf.GGUFReader(path, "r").tensors}
    a = np.array(ad[name + ".lora_a"].data, dtype=np.float32)
    b = np.array(ad[name + ".lora_b"].data, dtype=np.float32)
    base_t = next(t for t in base_reader.tensors if t.name == name)
    w_gguf = gguf.dequantize(base_t.data, base_t.tensor_type).astype(np.float32)
    w_gguf = w_gguf.reshape(b.shape[0], a.shape[1])
    ours = w_gguf.astype(np.float64) + (cfg["alpha"] / cfg["rank"]) * (b.astype(np.float64) @ a.astype(np.float64))

    m = copy.deepcopy(mod).float().cpu()
    m.merge(safe_merge=True, adapter_names=["default"])
    merged = m.get_base_layer().weight.detach().double().numpy()
    w_model = mod.get_base_layer().weight.detach().double().cpu().numpy()

    base_diff = float(np.max(np.abs(w_model - w_gguf)))          # transformers' dequant (+dtype) vs gguf's
    merge_diff = float(np.max(np.abs((merged - w_model) - (ours - w_gguf))))  # the LoRA deltas
    total_diff = float(np.max(np.abs(merged - ours)))
    delta_max = float(np.max(np.abs(ours - w_gguf)))
    base_tol = 1e-5 if mod.get_base_layer().weight.dtype == torch.float32 else 2e-2 * float(np.max(np.abs(w_gguf)))
    ok = merge_diff <= 1e-5 * max(1.0, delta_max) and base_diff <= base_tol
    return {"tensor": name, "delta_max_abs": delta_max, "merge_max_abs_diff": merge_diff,
            "base_max_abs_diff": base_diff, "total_max_abs_diff": total_diff, "ok": ok}


# ---------------------------------------------------------------------------------------------
# main

def train(cfg, log):
    if cfg["threads"]:
        os.environ["OMP_NUM_THREADS"] = str(cfg["threads"])
        os.environ["MKL_NUM_THREADS"] = str(cfg["threads"])
    import random

    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model

    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    t_start = time.time()
    device, dtype = pick_device_dtype(cfg, torch)
    out_dir = os.path.abspath(cfg["out_dir"])
    os.makedirs(out_dir, exist_ok=True)
    ckpt_path = os.path.join(out_dir, "checkpoint", "state.pt")

    base_reader, arch, gguf_template, base_shapes = gguf_metadata(cfg["base_gguf"])
    if arch not in ("qwen2",):
        warn(f"warning: base architecture {arch!r} is untested; tensor names assume llama-style blocks")

    t0 = time.time()
    model, tok = load_model_and_tokenizer(cfg, torch, device, dtype)
    load_s = time.time() - t0
    end_id, train_ex, skipped = training_examples(cfg, tok, gguf_template)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else end_id
    val_ex, val_skipped = ([], 0)
    if cfg["val_file"]:
        val_ex, val_skipped = read_examples(cfg["val_file"], tok, cfg["max_len"], "val_file")

    random.seed(cfg["seed"])
    np.random.seed(cfg["seed"])
    torch.manual_seed(cfg["seed"])
    lcfg = LoraConfig(r=cfg["rank"], lora_alpha=cfg["alpha"], lora_dropout=cfg["dropout"],
                      target_modules=TARGET_MODULES, bias="none", task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lcfg)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    for p in params:
        if p.dtype != torch.float32:
            p.data = p.data.float()
    n_trainable = sum(p.numel() for p in params)
    causal_lm = peft_model.base_model.model  # the transformers model, LoRA layers injected
    opt = torch.optim.AdamW(params, lr=cfg["learning_rate"], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    lengths, plan, computed_per_epoch = plan_run(train_ex, cfg)
    S = len(plan)
    warmup = min(100, max(1, math.ceil(0.05 * S)))

    def lr_at(step):  # 1-based
        if step <= warmup:
            return cfg["learning_rate"] * step / warmup
        return cfg["learning_rate"] * (S - step + 1) / (S - warmup + 1)

    # the frozen linear weights each computed token passes through twice (forward, and the
    # backward pass to the inputs)
    base_linear = sum(m.get_base_layer().weight.numel() for _, _, m in lora_modules(peft_model))
    log.emit("start", examples=len(train_ex), skipped_too_long=skipped, steps=S, device=device,
             dtype=dtype, trainable_params=n_trainable, tokens_per_epoch=sum(lengths),
             computed_tokens_per_epoch=computed_per_epoch, base_linear_params=base_linear,
             val_examples=len(val_ex), val_skipped_too_long=val_skipped, warmup_steps=warmup,
             load_s=rnd(load_s, 2), threads=torch.get_num_threads())

    signature = {k: cfg[k] for k in RESUME_KEYS}
    signature["base_gguf"] = os.path.abspath(cfg["base_gguf"])
    signature["train_sha256"] = file_sha256(cfg["train_file"])

    step, tokens, computed, elapsed_before = 0, 0, 0, 0.0
    train_losses, val_losses = [], []
    if cfg["resume"] and os.path.exists(ckpt_path):
        st = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if st["signature"] != signature:
            diff = [k for k in signature if st["signature"].get(k) != signature[k]]
            raise TrainError("checkpoint does not match this config (differs in: " + ", ".join(diff) + ")")
        if st["plan"] != plan:
            raise TrainError("checkpoint data order differs from this run's")
        named = dict(peft_model.named_parameters())
        with torch.no_grad():
            for k, v in st["lora"].items():
                named[k].copy_(v.to(named[k].device))
        opt.load_state_dict(st["optimizer"])
        step, tokens, elapsed_before = st["step"], st["tokens"], st["elapsed_s"]
        computed = st.get("computed_tokens", 0)
        train_losses, val_losses = st["train_losses"], st["val_losses"]
        log.events[:0] = st["events"]  # history first, then this run's start event
        set_rng_state(st["rng"], torch, np, random)
        log.emit("resume", step=step, path=ckpt_path)
    elif cfg["resume"]:
        warn("resume requested but no checkpoint found; starting from scratch")

    peft_model.train()
    if step == 0 and val_ex:
        v = evaluate(causal_lm, peft_model, val_ex, cfg, pad_id, torch, device)
        val_losses.append((0, v))
        log.emit("eval", step=0, val_loss=rnd(v))

    t_train = time.time()
    train_time, warm_tokens, warm_computed, warm_time = 0.0, 0, 0, 0.0  # rate excludes this process's first step
    first_step_here = step + 1
    while step < S:
        epoch, micro = plan[step]
        step += 1
        lr = lr_at(step)
        for g in opt.param_groups:
            g["lr"] = lr
        members = [i for mb in micro for _, pack in mb for i in pack]
        n_answer = sum(len(train_ex[i][0]) - train_ex[i][1] for i in members)
        # tokens of the examples (what an epoch is made of), and tokens computed: a pack
        # computes its shared prefix once
        n_tok = sum(len(train_ex[i][0]) for i in members)
        n_comp = n_tok - sum(shared * (len(pack) - 1) for mb in micro for shared, pack in mb)
        ts = time.time()
        loss_sum = 0.0
        for mb in micro:
            batch = collate(train_ex, mb, pad_id, torch, device)
            loss = batch_loss_sum(causal_lm, batch, torch)
            (loss / n_answer).backward()
            loss_sum += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(params, CLIP_NORM)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        dt = time.time() - ts
        train_time += dt
        tokens += n_tok
        computed += n_comp
        if step > first_step_here:
            warm_tokens += n_tok
            warm_computed += n_comp
            warm_time += dt
        rate = warm_tokens / warm_time if warm_time > 0 else n_tok / dt
        computed_rate = warm_computed / warm_time if warm_time > 0 else n_comp / dt
        loss_mean = loss_sum / n_answer
        if not math.isfinite(loss_mean):
            raise TrainError(f"loss is {loss_mean} at step {step}")
        train_losses.append((step, loss_mean))
        log.emit("step", step=step, steps=S, epoch=epoch, loss=rnd(loss_mean), lr=float(f"{lr:.6g}"),
                 tokens=tokens, tokens_per_s=rnd(rate, 2), computed_tokens_per_s=rnd(computed_rate, 2),
                 elapsed_s=rnd(elapsed_before + time.time() - t_train, 2))
        if val_ex and cfg["eval_every"] and step % cfg["eval_every"] == 0 and step < S:
            v = evaluate(causal_lm, peft_model, val_ex, cfg, pad_id, torch, device)
            val_losses.append((step, v))
            log.emit("eval", step=step, val_loss=rnd(v))
        if cfg["checkpoint_every"] and (step % cfg["checkpoint_every"] == 0 or step == S):
            log.emit("checkpoint", step=step, path=ckpt_path)
            state = {
                "signature": signature, "plan": plan, "step": step, "tokens": tokens, "computed_tokens": computed,
                "elapsed_s": elapsed_before + time.time() - t_train,
                "lora": {k: p.detach().cpu().clone() for k, p in peft_model.named_parameters() if p.requires_grad},
                "optimizer": opt.state_dict(), "scheduler": {"warmup": warmup, "steps": S, "last_step": step},
                "rng": rng_state(torch, np, random), "train_losses": train_losses, "val_losses": val_losses,
                "events": list(log.events),
            }
            save_checkpoint(ckpt_path, state, torch)

    if val_ex and (not val_losses or val_losses[-1][0] != S):
        v = evaluate(causal_lm, peft_model, val_ex, cfg, pad_id, torch, device)
        val_losses.append((S, v))
        log.emit("eval", step=S, val_loss=rnd(v))

    # outputs
    peft_dir = os.path.join(out_dir, "peft")
    tmp_dir = peft_dir + ".tmp"
    if os.path.isdir(tmp_dir):
        import shutil
        shutil.rmtree(tmp_dir)
    peft_model.save_pretrained(tmp_dir)
    if os.path.isdir(peft_dir):
        import shutil
        shutil.rmtree(peft_dir)
    os.replace(tmp_dir, peft_dir)
    adapter_path = os.path.join(out_dir, "adapter.gguf")
    write_adapter_gguf(adapter_path, peft_model, cfg, arch, base_shapes)
    ver = verify_adapter(adapter_path, peft_model, cfg, base_reader, torch)
    log.emit("verify", **ver)
    if not ver["ok"]:
        raise TrainError("adapter.gguf does not reproduce PEFT's merged weight: " + json.dumps(ver))

    total_elapsed = elapsed_before + time.time() - t_train
    rate = warm_tokens / warm_time if warm_time > 0 else (tokens / train_time if train_time > 0 else None)
    computed_rate = warm_computed / warm_time if warm_time > 0 else (computed / train_time if train_time > 0 else None)
    log.emit("done", adapter=adapter_path, peft_dir=peft_dir, examples=len(train_ex), epochs=cfg["epochs"],
             device=device, dtype=dtype, trainable_params=n_trainable,
             train_loss_first=rnd(train_losses[0][1]) if train_losses else None,
             train_loss_last=rnd(train_losses[-1][1]) if train_losses else None,
             val_loss_first=rnd(val_losses[0][1]) if val_losses else None,
             val_loss_last=rnd(val_losses[-1][1]) if val_losses else None,
             steps=S, tokens=tokens, tokens_per_s=rnd(rate, 2), computed_tokens=computed,
             tokens_per_epoch=sum(lengths), computed_tokens_per_epoch=computed_per_epoch,
             base_linear_params=base_linear,
             computed_tokens_per_s=rnd(computed_rate, 2), elapsed_s=rnd(total_elapsed, 2),
             wall_s=rnd(time.time() - t_start, 2))
    log.write_file(os.path.join(out_dir, "train_log.json"))


def main():
    ap = argparse.ArgumentParser(description="LoRA fine-tuning of a GGUF chat model")
    ap.add_argument("--config", required=True)
    ap.add_argument("--plan-only", action="store_true",
                    help="report the examples, steps and tokens an epoch computes, and stop")
    args = ap.parse_args()
    log = Log()
    out_dir = None
    try:
        cfg = load_config(args.config)
        out_dir = cfg["out_dir"]
        if args.plan_only:
            plan_only(cfg, log)
        else:
            train(cfg, log)
    except Exception as e:  # report every failure as an event
        import traceback

        traceback.print_exc(file=sys.stderr)
        msg = str(e) if isinstance(e, TrainError) else f"{type(e).__name__}: {e}"
        log.emit("error", message=msg)
        if out_dir:
            try:
                os.makedirs(out_dir, exist_ok=True)
                log.write_file(os.path.join(out_dir, "train_log.json"))
            except OSError:
                pass
        sys.exit(1)


if __name__ == "__main__":
    main()
