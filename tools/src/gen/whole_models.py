#!/usr/bin/python3
"""Small whole transformer models in the forms of the architectures people deploy, exported by PyTorch's
TorchScript exporter (Debian python3-torch 1.13) with dynamic batch and sequence axes.

Each module is written the way its reference implementation (Hugging Face transformers, or OpenAI's Whisper)
writes its attention, with tiny dims (hidden 64-128, 2 layers, small vocabularies) and seeded random weights:
the exported graphs carry the real spellings (bmm on [b*h, t, d], baddbmm with ALiBi, masked_fill with
finfo.min, softmax in float32 between casts, repeat_kv by expand + reshape, packed QKV split by slicing,
multi-query K/V broadcast by MatMul, Einsum, KV-cache inputs) at a size fit to commit as test fixtures.

    tools/scripts/install-torch.sh            # Debian's python3-torch and python3-onnx, when missing
    /usr/bin/python3 tools/src/gen/whole_models.py [OUT_DIR]   # default tools/fixtures/whole-models

writes OUT_DIR/<name>.onnx, OUT_DIR/expected.json (per model: the attention sites a correct importer must find,
with heads, kv heads, head size and what the mask is) and OUT_DIR/reference.json (per model: inputs at two
bindings of batch, sequence and past lengths, and the first output PyTorch computed for each, so a test can check
the export in onnxruntime).
Tests and CI never run this script; they read what it wrote.
"""
import json, math, os, sys, warnings
import torch, torch.nn as nn, torch.nn.functional as F

warnings.filterwarnings("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "fixtures", "whole-models")
torch.set_num_threads(1)  # reference outputs reproducible run to run (threaded reductions reorder sums)


# ---------------------------------------------------------------------------------------------------------
# masks, as transformers' modeling_attn_mask_utils / older modeling files build them
# ---------------------------------------------------------------------------------------------------------
def expand_mask(mask, dtype, tgt_len):
    """[b, src] 1/0 padding mask -> [b, 1, tgt, src] additive mask (0 or finfo.min)"""
    b, src = mask.size()
    expanded = mask[:, None, None, :].expand(b, 1, tgt_len, src).to(dtype)
    inverted = 1.0 - expanded
    return inverted.masked_fill(inverted.to(torch.bool), torch.finfo(dtype).min)


def causal_mask(b, tgt, past, dtype, sliding_window=None):
    """[b, 1, tgt, past + tgt] additive causal mask (0 or finfo.min), optionally limited to a sliding window"""
    mask = torch.full((tgt, tgt), torch.finfo(dtype).min)
    cond = torch.arange(mask.size(-1))
    mask = mask.masked_fill(cond < (cond + 1).view(mask.size(-1), 1), 0).to(dtype)
    if past is not None:
        mask = torch.cat([torch.zeros(tgt, past, dtype=dtype), mask], dim=-1)
    if sliding_window is not None:  # keys j <= i - window are out of the window
        context = torch.tril(torch.ones_like(mask, dtype=torch.bool), diagonal=-sliding_window)
        mask = mask.masked_fill(context, torch.finfo(dtype).min)
    return mask[None, None, :, :].expand(b, 1, tgt, mask.size(-1))


def cache_position_mask(b, t, past, dtype, sliding_window, attention_mask):
    """transformers >= 4.42 (_update_causal_mask / _prepare_4d_causal_attention_mask_with_cache_position): the
    mask of queries at cache_position over every cached and new key, from arange comparisons (so it stays right
    for every past length), the sliding window OR-ed in, padding where causal + attention_mask == 0"""
    min_dtype = torch.finfo(dtype).min
    target = past + t
    cache_position = torch.arange(past, past + t)
    causal = torch.full((t, target), fill_value=min_dtype, dtype=dtype)
    diagonal_attend = torch.arange(target) > cache_position.reshape(-1, 1)
    if sliding_window is not None:
        sliding_attend = torch.arange(target) <= (cache_position.reshape(-1, 1) - sliding_window)
        diagonal_attend = diagonal_attend | sliding_attend
    causal = causal * diagonal_attend
    causal = causal[None, None, :, :].expand(b, 1, -1, -1)
    padding = (causal + attention_mask[:, None, None, :].to(dtype)) == 0
    return causal.masked_fill(padding, min_dtype)


def merge_masks(causal, padding_2d, dtype):
    """causal [b,1,t,s] + padding [b,s] -> [b,1,t,s], clamped at finfo.min as the 4d mask helpers do"""
    pad = expand_mask(padding_2d, dtype, causal.size(-2))
    return causal.masked_fill(pad.to(torch.bool), torch.finfo(dtype).min)


class RMSNorm(nn.Module):
    def __init__(s, h, eps=1e-6):
        super().__init__(); s.weight = nn.Parameter(torch.ones(h)); s.eps = eps

    def forward(s, x):
        v = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
        return s.weight * (x * torch.rsqrt(v + s.eps)).to(x.dtype)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


class Rotary(nn.Module):
    """Llama's rotary embedding: cos/sin of position_ids computed at run time (no cache to commit)"""
    def __init__(s, dim, base=10000.0):
        super().__init__()
        s.register_buffer("inv_freq", 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)), persistent=False)

    def forward(s, position_ids):  # [b, t] -> cos, sin [b, 1, t, dim]
        freqs = position_ids[:, :, None].float() * s.inv_freq[None, None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos()[:, None], emb.sin()[:, None]


def repeat_kv(x, n_rep):
    """transformers' repeat_kv: [b, kv, t, d] -> [b, kv * n_rep, t, d] by expand + reshape"""
    b, nkv, t, hd = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(b, nkv, n_rep, t, hd).reshape(b, nkv * n_rep, t, hd)


# ---------------------------------------------------------------------------------------------------------
# BERT / RoBERTa / ELECTRA (BertSelfAttention), DistilBERT, ViT
# ---------------------------------------------------------------------------------------------------------
class BertSelfAttention(nn.Module):
    def __init__(s, h, nh):
        super().__init__(); s.nh, s.hd = nh, h // nh
        s.query, s.key, s.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)

    def transpose_for_scores(s, x):
        x = x.view(x.size()[:-1] + (s.nh, s.hd))
        return x.permute(0, 2, 1, 3)

    def forward(s, x, mask=None):
        q, k, v = s.transpose_for_scores(s.query(x)), s.transpose_for_scores(s.key(x)), s.transpose_for_scores(s.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(s.hd)
        if mask is not None:
            scores = scores + mask
        probs = F.softmax(scores, dim=-1)
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        return ctx.view(ctx.size()[:-2] + (s.nh * s.hd,))


class BertLayer(nn.Module):
    def __init__(s, h, nh, ff, act=F.gelu):
        super().__init__(); s.attn = BertSelfAttention(h, nh); s.o = nn.Linear(h, h); s.ln1 = nn.LayerNorm(h)
        s.f1, s.f2, s.ln2, s.act = nn.Linear(h, ff), nn.Linear(ff, h), nn.LayerNorm(h), act

    def forward(s, x, mask=None):
        x = s.ln1(x + s.o(s.attn(x, mask)))
        return s.ln2(x + s.f2(s.act(s.f1(x))))


class Bert(nn.Module):
    """BERT: word + position + token type embeddings, extended mask (1 - m) * finfo.min, post-norm layers.
    roberta=True: position ids from input_ids (cumsum of non-padding, padding_idx 1), as RobertaEmbeddings.
    emb < h: ELECTRA's smaller embeddings projected to the hidden size."""
    def __init__(s, vocab=128, h=64, nh=4, L=2, maxpos=128, roberta=False, emb=None):
        super().__init__(); e = emb or h; s.roberta = roberta
        s.word, s.pos, s.token_type = nn.Embedding(vocab, e), nn.Embedding(maxpos, e), nn.Embedding(2, e); s.ln = nn.LayerNorm(e)
        s.project = nn.Linear(e, h) if e != h else None
        s.layers = nn.ModuleList([BertLayer(h, nh, h) for _ in range(L)])

    def forward(s, input_ids, attention_mask, token_type_ids):
        if s.roberta:
            m = input_ids.ne(1).int()
            pos = (torch.cumsum(m, dim=1).type_as(m) * m).long() + 1
        else:
            pos = torch.arange(input_ids.size(1)).unsqueeze(0).expand_as(input_ids)
        x = s.ln(s.word(input_ids) + s.pos(pos) + s.token_type(token_type_ids))
        if s.project is not None:
            x = s.project(x)
        ext = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for l in s.layers:
            x = l(x, ext)
        return x


class DistilBertAttention(nn.Module):
    """DistilBERT's MultiHeadSelfAttention: q scaled before the matmul, masked_fill(mask == 0, finfo.min) after"""
    def __init__(s, h, nh):
        super().__init__(); s.nh, s.hd = nh, h // nh
        s.q_lin, s.k_lin, s.v_lin, s.out_lin = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)

    def forward(s, x, mask):
        bs, k_len = x.size(0), x.size(1)
        shape = lambda z: z.view(bs, -1, s.nh, s.hd).transpose(1, 2)
        q, k, v = shape(s.q_lin(x)), shape(s.k_lin(x)), shape(s.v_lin(x))
        q = q / math.sqrt(s.hd)
        scores = torch.matmul(q, k.transpose(2, 3))
        mask = (mask == 0).view(bs, 1, 1, k_len).expand_as(scores)
        scores = scores.masked_fill(mask, torch.tensor(torch.finfo(scores.dtype).min))
        weights = nn.functional.softmax(scores, dim=-1)
        ctx = torch.matmul(weights, v).transpose(1, 2).contiguous().view(bs, -1, s.nh * s.hd)
        return s.out_lin(ctx)


class DistilBert(nn.Module):
    def __init__(s, vocab=128, h=64, nh=4, L=2, maxpos=128):
        super().__init__(); s.word, s.pos, s.ln = nn.Embedding(vocab, h), nn.Embedding(maxpos, h), nn.LayerNorm(h)
        s.attn = nn.ModuleList([DistilBertAttention(h, nh) for _ in range(L)])
        s.ln1, s.ln2 = nn.ModuleList([nn.LayerNorm(h) for _ in range(L)]), nn.ModuleList([nn.LayerNorm(h) for _ in range(L)])
        s.f1, s.f2 = nn.ModuleList([nn.Linear(h, h) for _ in range(L)]), nn.ModuleList([nn.Linear(h, h) for _ in range(L)])

    def forward(s, input_ids, attention_mask):
        pos = torch.arange(input_ids.size(1), dtype=torch.long).unsqueeze(0).expand_as(input_ids)
        x = s.ln(s.word(input_ids) + s.pos(pos))
        for i in range(len(s.attn)):
            x = s.ln1[i](x + s.attn[i](x, attention_mask))
            x = s.ln2[i](x + s.f2[i](F.gelu(s.f1[i](x))))
        return x


class Vit(nn.Module):
    """ViT (HF ViTSelfAttention = BERT's), pre-norm, conv patches of 8 on 32x32 images: seq 17 (16 patches + cls)"""
    def __init__(s, h=64, nh=4, L=2, img=32, patch=8, classes=10):
        super().__init__(); n = (img // patch) ** 2
        s.pe = nn.Conv2d(3, h, patch, patch); s.cls = nn.Parameter(torch.randn(1, 1, h) * 0.02); s.pos = nn.Parameter(torch.randn(1, n + 1, h) * 0.02)
        s.attn = nn.ModuleList([BertSelfAttention(h, nh) for _ in range(L)]); s.o = nn.ModuleList([nn.Linear(h, h) for _ in range(L)])
        s.ln1, s.ln2 = nn.ModuleList([nn.LayerNorm(h) for _ in range(L)]), nn.ModuleList([nn.LayerNorm(h) for _ in range(L)])
        s.f1, s.f2 = nn.ModuleList([nn.Linear(h, h) for _ in range(L)]), nn.ModuleList([nn.Linear(h, h) for _ in range(L)])
        s.ln, s.fc = nn.LayerNorm(h), nn.Linear(h, classes)

    def forward(s, pixel_values):
        x = s.pe(pixel_values).flatten(2).transpose(1, 2)
        x = torch.cat((s.cls.expand(x.shape[0], -1, -1), x), dim=1) + s.pos
        for i in range(len(s.attn)):
            x = x + s.o[i](s.attn[i](s.ln1[i](x)))
            x = x + s.f2[i](F.gelu(s.f1[i](s.ln2[i](x))))
        return s.fc(s.ln(x)[:, 0])


# ---------------------------------------------------------------------------------------------------------
# GPT-2 (Conv1D packed c_attn split, bool causal buffer + torch.where(finfo.min), past_key_values)
# ---------------------------------------------------------------------------------------------------------
class Conv1D(nn.Module):
    """GPT-2's Conv1D: x.view(-1, nx) addmm(bias, x, weight) viewed back"""
    def __init__(s, nf, nx):
        super().__init__(); s.nf = nf; s.weight = nn.Parameter(torch.randn(nx, nf) * 0.05); s.bias = nn.Parameter(torch.zeros(nf))

    def forward(s, x):
        size_out = x.size()[:-1] + (s.nf,)
        return torch.addmm(s.bias, x.view(-1, x.size(-1)), s.weight).view(size_out)


class Gpt2Attention(nn.Module):
    def __init__(s, h, nh, maxpos):
        super().__init__(); s.nh, s.hd, s.h = nh, h // nh, h
        s.register_buffer("bias", torch.tril(torch.ones((maxpos, maxpos), dtype=torch.bool)).view(1, 1, maxpos, maxpos), persistent=False)
        s.c_attn, s.c_proj = Conv1D(3 * h, h), Conv1D(h, h)

    def split_heads(s, x):
        return x.view(x.size()[:-1] + (s.nh, s.hd)).permute(0, 2, 1, 3)

    def forward(s, x, attention_mask, past=None):
        q, k, v = s.c_attn(x).split(s.h, dim=2)
        q, k, v = s.split_heads(q), s.split_heads(k), s.split_heads(v)
        if past is not None:
            k, v = torch.cat((past[0], k), dim=-2), torch.cat((past[1], v), dim=-2)
        w = torch.matmul(q, k.transpose(-1, -2))
        w = w / torch.full([], v.size(-1) ** 0.5, dtype=w.dtype)
        ql, kl = q.size(-2), k.size(-2)
        causal = s.bias[:, :, kl - ql: kl, :kl]
        w = torch.where(causal, w.to(w.dtype), torch.full([], torch.finfo(w.dtype).min, dtype=w.dtype))
        w = w + attention_mask
        w = nn.functional.softmax(w, dim=-1).type(v.dtype)
        y = torch.matmul(w, v).permute(0, 2, 1, 3).contiguous()
        return s.c_proj(y.view(y.size()[:-2] + (s.h,))), (k, v)


class Gpt2(nn.Module):
    """GPT-2: learned positions, pre-norm blocks, tied LM head; with_past: past_key_values inputs, present outputs"""
    def __init__(s, vocab=128, h=64, nh=4, L=2, maxpos=128, with_past=False):
        super().__init__(); s.with_past = with_past
        s.wte, s.wpe = nn.Embedding(vocab, h), nn.Embedding(maxpos, h)
        s.attn = nn.ModuleList([Gpt2Attention(h, nh, maxpos) for _ in range(L)])
        s.ln1, s.ln2 = nn.ModuleList([nn.LayerNorm(h) for _ in range(L)]), nn.ModuleList([nn.LayerNorm(h) for _ in range(L)])
        s.fc, s.proj = nn.ModuleList([Conv1D(h, h) for _ in range(L)]), nn.ModuleList([Conv1D(h, h) for _ in range(L)])
        s.ln_f = nn.LayerNorm(h)

    def forward(s, input_ids, attention_mask, *past):
        past_len = past[0].size(-2) if s.with_past else 0
        pos = torch.arange(past_len, input_ids.size(-1) + past_len, dtype=torch.long).unsqueeze(0)
        x = s.wte(input_ids) + s.wpe(pos)
        m = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        presents = []
        for i in range(len(s.attn)):
            a, kv = s.attn[i](s.ln1[i](x), m, (past[2 * i], past[2 * i + 1]) if s.with_past else None)
            x = x + a
            x = x + s.proj[i](F.gelu(s.fc[i](s.ln2[i](x)), approximate="tanh"))
            presents += list(kv)
        logits = s.ln_f(x) @ s.wte.weight.t()
        return (logits, *presents) if s.with_past else logits


# ---------------------------------------------------------------------------------------------------------
# GPT-BigCode (StarCoder, SantaCoder): multi-query attention with the heads folded into the query axis
# ---------------------------------------------------------------------------------------------------------
class BigCodeAttention(nn.Module):
    """GPTBigCodeAttention (eager, multi_query): q [b, t, h*d] reshaped to [b, t*h, d] against one k [b, d, s],
    scores baddbmm(zeros, q, kᵀ, beta=1, alpha=1/sqrt(d)) viewed [b, t, h, s] for the mask, softmax, viewed
    back and bmm with v [b, s, d]; the cache is key and value packed on the last axis, [b, s, 2d]"""
    def __init__(s, h, nh):
        super().__init__(); s.nh, s.hd, s.h = nh, h // nh, h
        s.c_attn, s.c_proj = nn.Linear(h, h + 2 * s.hd), nn.Linear(h, h)

    def _attn(s, query, key, value, attention_mask):
        scale_factor = 1 / s.hd ** 0.5
        query_shape = query.shape
        batch_size, query_length, key_length = query_shape[0], query_shape[1], key.size(-1)
        attn_shape = (batch_size, query_length, s.nh, key_length)
        attn_view = (batch_size, query_length * s.nh, key_length)
        query = query.reshape(batch_size, query_length * s.nh, s.hd)
        attn_weights = torch.empty(attn_view, dtype=query.dtype).zero_()
        attn_weights = torch.baddbmm(attn_weights, query, key, beta=1, alpha=scale_factor).view(attn_shape)
        mask_value = torch.full([], torch.finfo(attn_weights.dtype).min, dtype=attn_weights.dtype)
        attn_weights = torch.where(attention_mask, attn_weights, mask_value)
        attn_weights = nn.functional.softmax(attn_weights, dim=-1)
        return torch.bmm(attn_weights.view(attn_view), value).view(query_shape)

    def forward(s, x, attention_mask, layer_past=None):
        query, key_value = s.c_attn(x).split((s.h, 2 * s.hd), dim=2)
        if layer_past is not None:
            key_value = torch.cat((layer_past, key_value), dim=-2)
        key, value = key_value.split((s.hd, s.hd), dim=-1)
        return s.c_proj(s._attn(query, key.transpose(-1, -2), value, attention_mask)), key_value


class BigCode(nn.Module):
    """GPTBigCodeModel: learned positions from the past length, the causal mask a bool tril buffer sliced
    [kl - ql: kl, :kl] and multiplied by the padding mask, unsqueezed to [b, t, 1, s] (the multi-query view)"""
    def __init__(s, vocab=128, h=64, nh=4, L=2, maxpos=128):
        super().__init__()
        s.wte, s.wpe = nn.Embedding(vocab, h), nn.Embedding(maxpos, h)
        s.register_buffer("bias", torch.tril(torch.ones((maxpos, maxpos), dtype=torch.bool)), persistent=False)
        s.attn = nn.ModuleList([BigCodeAttention(h, nh) for _ in range(L)])
        s.ln1, s.ln2 = nn.ModuleList([nn.LayerNorm(h) for _ in range(L)]), nn.ModuleList([nn.LayerNorm(h) for _ in range(L)])
        s.fc, s.proj = nn.ModuleList([nn.Linear(h, 4 * h) for _ in range(L)]), nn.ModuleList([nn.Linear(4 * h, h) for _ in range(L)])
        s.ln_f = nn.LayerNorm(h)

    def forward(s, input_ids, attention_mask, *past):
        batch_size, query_length = input_ids.shape
        past_length = past[0].size(-2)
        key_length = past_length + query_length
        pos = torch.arange(past_length, key_length, dtype=torch.long).unsqueeze(0)
        x = s.wte(input_ids) + s.wpe(pos)
        self_attention_mask = s.bias[None, key_length - query_length: key_length, :key_length]
        self_attention_mask = self_attention_mask * attention_mask.view(batch_size, 1, -1).to(dtype=torch.bool)
        mask = self_attention_mask.unsqueeze(2)
        presents = []
        for i in range(len(s.attn)):
            a, kv = s.attn[i](s.ln1[i](x), mask, past[i])
            x = x + a
            x = x + s.proj[i](F.gelu(s.fc[i](s.ln2[i](x)), approximate="tanh"))
            presents.append(kv)
        return (s.ln_f(x) @ s.wte.weight.t(), *presents)


# ---------------------------------------------------------------------------------------------------------
# torch.nn.MultiheadAttention (custom models, DETR-style stacks): heads folded into the batch by the module
# ---------------------------------------------------------------------------------------------------------
class TorchMha(nn.Module):
    """a decoder stack of nn.MultiheadAttention(batch_first=True) with a bool causal attn_mask and
    key_padding_mask = attention_mask == 0, which the module merges (logical_or over [b*h, 1, s]) into one -inf
    mask for baddbmm(mask, q, kᵀ) on [b*h, t, d]"""
    def __init__(s, vocab=128, h=64, nh=4, L=2, maxpos=128):
        super().__init__()
        s.wte, s.wpe = nn.Embedding(vocab, h), nn.Embedding(maxpos, h)
        s.attn = nn.ModuleList([nn.MultiheadAttention(h, nh, batch_first=True) for _ in range(L)])
        s.ln = nn.ModuleList([nn.LayerNorm(h) for _ in range(L)])
        s.ff = nn.ModuleList([nn.Sequential(nn.Linear(h, 2 * h), nn.GELU(), nn.Linear(2 * h, h)) for _ in range(L)])
        s.ln_f = nn.LayerNorm(h)

    def forward(s, input_ids, attention_mask):
        t = input_ids.size(1)
        x = s.wte(input_ids) + s.wpe(torch.arange(t).unsqueeze(0))
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
        padding = attention_mask == 0
        for i in range(len(s.attn)):
            y = s.ln[i](x)
            x = x + s.attn[i](y, y, y, key_padding_mask=padding, attn_mask=causal, need_weights=False)[0]
            x = x + s.ff[i](x)
        return s.ln_f(x) @ s.wte.weight.t()


# ---------------------------------------------------------------------------------------------------------
# GPT-NeoX (packed qkv per head, partial rotary, baddbmm on [b*h, t, d], past)
# ---------------------------------------------------------------------------------------------------------
class NeoXAttention(nn.Module):
    def __init__(s, h, nh, maxpos, rotary_pct=0.5):
        super().__init__(); s.nh, s.hd, s.h = nh, h // nh, h; s.rot = int(s.hd * rotary_pct)
        s.register_buffer("bias", torch.tril(torch.ones((maxpos, maxpos), dtype=torch.bool)).view(1, 1, maxpos, maxpos), persistent=False)
        s.register_buffer("masked_bias", torch.tensor(-1e9), persistent=False)
        s.rotary = Rotary(s.rot); s.norm_factor = math.sqrt(s.hd)
        s.query_key_value, s.dense = nn.Linear(h, 3 * h), nn.Linear(h, h)

    def forward(s, x, attention_mask, position_ids, past):
        qkv = s.query_key_value(x)
        qkv = qkv.view(qkv.size()[:-1] + (s.nh, 3 * s.hd)).permute(0, 2, 1, 3)
        q, k, v = qkv[..., : s.hd], qkv[..., s.hd: 2 * s.hd], qkv[..., 2 * s.hd:]
        q_rot, q_pass = q[..., : s.rot], q[..., s.rot:]
        k_rot, k_pass = k[..., : s.rot], k[..., s.rot:]
        cos, sin = s.rotary(position_ids)
        q = torch.cat((q_rot * cos + rotate_half(q_rot) * sin, q_pass), dim=-1)
        k = torch.cat((k_rot * cos + rotate_half(k_rot) * sin, k_pass), dim=-1)
        k, v = torch.cat((past[0], k), dim=-2), torch.cat((past[1], v), dim=-2)
        # _attn
        b, nh, ql, hd = q.size(); kl = k.size(-2)
        causal = s.bias[:, :, kl - ql: kl, :kl]
        q2, k2 = q.reshape(b * nh, ql, hd), k.reshape(b * nh, kl, hd)
        scores = torch.zeros(b * nh, ql, kl, dtype=q.dtype)
        scores = torch.baddbmm(scores, q2, k2.transpose(1, 2), beta=1.0, alpha=(1.0 / s.norm_factor))
        scores = scores.view(b, nh, ql, kl)
        scores = torch.where(causal, scores, s.masked_bias.to(scores.dtype))
        scores = scores + attention_mask
        w = nn.functional.softmax(scores, dim=-1).to(v.dtype)
        y = torch.matmul(w, v).permute(0, 2, 1, 3).contiguous()
        return s.dense(y.view(y.size(0), y.size(1), s.h)), (k, v)


class NeoX(nn.Module):
    """GPT-NeoX: parallel residual, rotary on half the head, past_key_values"""
    def __init__(s, vocab=128, h=64, nh=4, L=2, maxpos=128):
        super().__init__(); s.embed_in = nn.Embedding(vocab, h)
        s.attn = nn.ModuleList([NeoXAttention(h, nh, maxpos) for _ in range(L)])
        s.ln1, s.ln2 = nn.ModuleList([nn.LayerNorm(h) for _ in range(L)]), nn.ModuleList([nn.LayerNorm(h) for _ in range(L)])
        s.f1, s.f2 = nn.ModuleList([nn.Linear(h, h) for _ in range(L)]), nn.ModuleList([nn.Linear(h, h) for _ in range(L)])
        s.ln_f, s.embed_out = nn.LayerNorm(h), nn.Linear(h, vocab, bias=False)

    def forward(s, input_ids, attention_mask, *past):
        past_len = past[0].size(-2)
        pos = torch.arange(past_len, input_ids.size(-1) + past_len, dtype=torch.long).unsqueeze(0)
        x = s.embed_in(input_ids)
        m = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        presents = []
        for i in range(len(s.attn)):
            a, kv = s.attn[i](s.ln1[i](x), m, pos, (past[2 * i], past[2 * i + 1]))
            x = x + a + s.f2[i](F.gelu(s.f1[i](s.ln2[i](x))))
            presents += list(kv)
        return (s.embed_out(s.ln_f(x)), *presents)


# ---------------------------------------------------------------------------------------------------------
# Llama / Mistral / Qwen2 (RoPE, GQA by repeat_kv, 4d causal mask, softmax in float32, past)
# ---------------------------------------------------------------------------------------------------------
class LlamaAttention(nn.Module):
    def __init__(s, h, nh, nkv, qkv_bias=False):
        super().__init__(); s.nh, s.nkv, s.hd = nh, nkv, h // nh
        s.q_proj, s.k_proj = nn.Linear(h, nh * s.hd, bias=qkv_bias), nn.Linear(h, nkv * s.hd, bias=qkv_bias)
        s.v_proj, s.o_proj = nn.Linear(h, nkv * s.hd, bias=qkv_bias), nn.Linear(nh * s.hd, h, bias=False)
        s.rotary = Rotary(s.hd)

    def rotated_qkv(s, x, position_ids):
        """q [b, nh, t, hd] and k, v [b, nkv, t, hd], RoPE applied to q and k"""
        b, t, _ = x.size()
        q = s.q_proj(x).view(b, t, s.nh, s.hd).transpose(1, 2)
        k = s.k_proj(x).view(b, t, s.nkv, s.hd).transpose(1, 2)
        v = s.v_proj(x).view(b, t, s.nkv, s.hd).transpose(1, 2)
        cos, sin = s.rotary(position_ids)
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin, v

    def forward(s, x, mask, position_ids, past=None):
        b, t, _ = x.size()
        q, k, v = s.rotated_qkv(x, position_ids)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        present = (k, v)
        k, v = repeat_kv(k, s.nh // s.nkv), repeat_kv(v, s.nh // s.nkv)
        w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(s.hd)
        w = s.add_mask(w, mask, k)
        w = nn.functional.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        y = torch.matmul(w, v).transpose(1, 2).contiguous().reshape(b, t, s.nh * s.hd)
        return s.o_proj(y), present

    def add_mask(s, w, mask, k):
        return w + mask


class Llama(nn.Module):
    """Llama / Mistral / Qwen2 decoder: RMSNorm, SwiGLU, RoPE from position_ids, GQA. with_past: past_key_values
    inputs and present outputs; window: Mistral's sliding-window causal mask; qkv_bias: Qwen2's biased q/k/v"""
    def __init__(s, vocab=128, h=64, nh=4, nkv=2, L=2, with_past=True, window=None, qkv_bias=False, cache_position=False):
        super().__init__(); s.with_past, s.window, s.cache_position = with_past, window, cache_position
        s.embed_tokens = nn.Embedding(vocab, h)
        s.attn = nn.ModuleList([LlamaAttention(h, nh, nkv, qkv_bias) for _ in range(L)])
        s.n1, s.n2 = nn.ModuleList([RMSNorm(h) for _ in range(L)]), nn.ModuleList([RMSNorm(h) for _ in range(L)])
        s.gate, s.up = nn.ModuleList([nn.Linear(h, h, bias=False) for _ in range(L)]), nn.ModuleList([nn.Linear(h, h, bias=False) for _ in range(L)])
        s.down = nn.ModuleList([nn.Linear(h, h, bias=False) for _ in range(L)])
        s.norm, s.lm_head = RMSNorm(h), nn.Linear(h, vocab, bias=False)

    def forward(s, input_ids, attention_mask, position_ids, *past):
        b, t = input_ids.size()
        past_len = past[0].size(-2) if s.with_past else None
        x = s.embed_tokens(input_ids)
        if s.cache_position:
            mask = cache_position_mask(b, t, 0 if past_len is None else past_len, x.dtype, s.window, attention_mask)
        else:
            mask = merge_masks(causal_mask(b, t, past_len, x.dtype, s.window), attention_mask, x.dtype)
        presents = []
        for i in range(len(s.attn)):
            a, kv = s.attn[i](s.n1[i](x), mask, position_ids, (past[2 * i], past[2 * i + 1]) if s.with_past else None)
            x = x + a; hx = s.n2[i](x)
            x = x + s.down[i](F.silu(s.gate[i](hx)) * s.up[i](hx))
            presents += list(kv)
        logits = s.lm_head(s.norm(x))
        return (logits, *presents) if s.with_past else logits


class LlamaEagerAttention(LlamaAttention):
    """transformers' eager attention from 4.38 on: the 4d mask sliced to the keys before it is added
    (causal_mask = attention_mask[:, :, :, : key_states.shape[-2]])"""
    def add_mask(s, w, mask, k):
        return w + mask[:, :, :, : k.shape[-2]]


class LlamaEager(Llama):
    """Llama (window: Mistral) as transformers >= 4.42 writes it in eager mode: the cache_position mask, sliced to
    the key length in every layer"""
    def __init__(s, vocab=128, h=64, nh=4, nkv=2, L=2, with_past=True, window=None):
        super().__init__(vocab=vocab, h=h, nh=nh, nkv=nkv, L=L, with_past=with_past, window=window, cache_position=True)
        s.attn = nn.ModuleList([LlamaEagerAttention(h, nh, nkv) for _ in range(L)])


class GemmaRMSNorm(RMSNorm):
    def forward(s, x):
        v = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
        return ((x * torch.rsqrt(v + s.eps)) * (1.0 + s.weight)).to(x.dtype)


class Gemma2Attention(LlamaAttention):
    """Gemma 2: head size 16 with query_pre_attn_scalar 24 (scale 24^-0.5), the scores softcapped at 50
    (tanh(w / 50) * 50); on a sliding layer the mask gets tril(ones_like(mask), diagonal=-window) filled with
    finfo.min; the mask sliced to the keys"""
    def __init__(s, h, nh, nkv, window=None):
        super().__init__(h, nh, nkv); s.window = window

    def forward(s, x, mask, position_ids, past=None):
        b, t, _ = x.size()
        if s.window is not None:
            sliding = torch.tril(torch.ones_like(mask, dtype=torch.bool), diagonal=-s.window)
            mask = torch.where(sliding, torch.tensor(torch.finfo(x.dtype).min), mask)
        q, k, v = s.rotated_qkv(x, position_ids)
        k, v = repeat_kv(k, s.nh // s.nkv), repeat_kv(v, s.nh // s.nkv)
        w = torch.matmul(q, k.transpose(2, 3)) * 24 ** -0.5
        w = torch.tanh(w / 50.0) * 50.0
        w = w + mask[:, :, :, : k.shape[-2]]
        w = nn.functional.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        y = torch.matmul(w, v).transpose(1, 2).contiguous().reshape(b, t, s.nh * s.hd)
        return s.o_proj(y), None


class Gemma2(Llama):
    """Gemma 2 without a cache: embeddings times sqrt(hidden), (1 + weight) RMSNorm, GQA 4/2, sliding and global
    layers alternating (window 4 on the first), the cache_position mask, the final logits softcapped at 30"""
    def __init__(s, window=4):
        super().__init__(with_past=False, cache_position=True)
        s.attn = nn.ModuleList([Gemma2Attention(64, 4, 2, window if i % 2 == 0 else None) for i in range(2)])
        s.n1, s.n2 = nn.ModuleList([GemmaRMSNorm(64) for _ in range(2)]), nn.ModuleList([GemmaRMSNorm(64) for _ in range(2)])
        s.norm = GemmaRMSNorm(64)

    def forward(s, input_ids, attention_mask, position_ids):
        b, t = input_ids.size()
        x = s.embed_tokens(input_ids) * torch.tensor(64 ** 0.5, dtype=torch.float32)
        mask = cache_position_mask(b, t, 0, x.dtype, None, attention_mask)
        for i in range(len(s.attn)):
            a, _ = s.attn[i](s.n1[i](x), mask, position_ids)
            x = x + a; hx = s.n2[i](x)
            x = x + s.down[i](F.gelu(s.gate[i](hx), approximate="tanh") * s.up[i](hx))
        logits = s.lm_head(s.norm(x))
        return torch.tanh(logits / 30.0) * 30.0


# ---------------------------------------------------------------------------------------------------------
# Llama through F.scaled_dot_product_attention as PyTorch >= 2.1's TorchScript exporter writes it (symbolic_opset14):
# the scale read from Q's shape, sqrt(scale) on Q and on Kᵀ each, a boolean mask as Where(mask, 0, -inf) added,
# is_causal as Trilu over ones(L, S). torch 1.13 has no SDPA: the symbolic's ops are written out here, op for op.
# ---------------------------------------------------------------------------------------------------------
def sdpa_as_exported(q, k, v, attn_mask=None, is_causal=False):
    scale = torch.ones(1) / torch.sqrt(torch._shape_as_tensor(q)[-1:].to(q.dtype))
    s = torch.matmul(q * torch.sqrt(scale), k.transpose(-2, -1) * torch.sqrt(scale))
    if is_causal:
        ones = torch.ones(q.size(-2), k.size(-2)).tril()
        s = s + torch.where(ones == 0, torch.tensor(-float("inf")), torch.tensor(0.0))
    elif attn_mask is not None:
        s = s + (torch.where(attn_mask, torch.tensor(0.0), torch.tensor(-float("inf"))) if attn_mask.dtype == torch.bool else attn_mask)
    return torch.matmul(torch.softmax(s, dim=-1), v)


class LlamaSdpaAttention(LlamaAttention):
    def forward(s, x, mask, position_ids, past=None):
        b, t, _ = x.size()
        q, k, v = s.rotated_qkv(x, position_ids)
        k, v = repeat_kv(k, s.nh // s.nkv), repeat_kv(v, s.nh // s.nkv)
        y = sdpa_as_exported(q, k, v, mask, is_causal=mask is None)
        return s.o_proj(y.transpose(1, 2).reshape(b, t, s.nh * s.hd)), None


class LlamaSdpa(Llama):
    """Llama whose attention goes through SDPA (transformers' attn_implementation="sdpa"): with an attention_mask,
    one boolean mask [b, 1, t, t] (causal and padding, as transformers >= 4.48 builds it for SDPA); without one,
    is_causal"""
    def __init__(s, with_mask=True):
        super().__init__(with_past=False); s.with_mask = with_mask
        s.attn = nn.ModuleList([LlamaSdpaAttention(64, 4, 2) for _ in range(2)])

    def forward(s, input_ids, *rest):
        attention_mask, position_ids = rest if s.with_mask else (None, rest[0])
        b, t = input_ids.size()
        x = s.embed_tokens(input_ids)
        i = torch.arange(t)
        mask = ((i[None, :] <= i[:, None])[None, None] & attention_mask[:, None, None, :].bool()) if s.with_mask else None
        for l in range(len(s.attn)):
            a, _ = s.attn[l](s.n1[l](x), mask, position_ids)
            x = x + a; hx = s.n2[l](x)
            x = x + s.down[l](F.silu(s.gate[l](hx)) * s.up[l](hx))
        return s.lm_head(s.norm(x))


# ---------------------------------------------------------------------------------------------------------
# Falcon (multi-query: one K/V head broadcast by MatMul over the head axis, packed qkv, rotary)
# ---------------------------------------------------------------------------------------------------------
class FalconAttention(nn.Module):
    def __init__(s, h, nh):
        super().__init__(); s.nh, s.hd, s.h = nh, h // nh, h
        s.query_key_value, s.dense = nn.Linear(h, h + 2 * s.hd, bias=False), nn.Linear(h, h, bias=False)
        s.rotary = Rotary(s.hd); s.inv_norm_factor = 1.0 / math.sqrt(s.hd)

    def forward(s, x, mask, position_ids):
        b, t, _ = x.shape
        fused = s.query_key_value(x).view(b, t, s.nh + 2, s.hd)
        q, k, v = fused[..., :-2, :], fused[..., [-2], :], fused[..., [-1], :]
        q = q.transpose(1, 2).reshape(b * s.nh, t, s.hd)
        k = k.transpose(1, 2).reshape(b, t, s.hd)
        v = v.transpose(1, 2).reshape(b, t, s.hd)
        cos, sin = s.rotary(position_ids)  # [b,1,t,d]
        q = (q.view(b, s.nh, t, s.hd) * cos + rotate_half(q.view(b, s.nh, t, s.hd)) * sin).reshape(b * s.nh, t, s.hd)
        k = k * cos[:, 0] + rotate_half(k) * sin[:, 0]
        q_ = q.reshape(b, s.nh, -1, s.hd)
        k_ = k.reshape(b, 1, -1, s.hd)
        v_ = v.reshape(b, 1, -1, s.hd)
        scores = q_ @ k_.transpose(-1, -2)
        scores /= math.sqrt(s.hd)
        scores = F.softmax(scores + mask, dim=-1, dtype=x.dtype)
        y = (scores @ v_).view(b, s.nh, t, s.hd).permute(0, 2, 1, 3).reshape(b, t, s.nh * s.hd)
        return s.dense(y)


class Falcon(nn.Module):
    """Falcon-7B-like: parallel attention + MLP off one LayerNorm, multi-query attention, bool mask -> finfo.min"""
    def __init__(s, vocab=128, h=64, nh=4, L=2):
        super().__init__(); s.word_embeddings = nn.Embedding(vocab, h)
        s.attn = nn.ModuleList([FalconAttention(h, nh) for _ in range(L)]); s.ln = nn.ModuleList([nn.LayerNorm(h) for _ in range(L)])
        s.f1, s.f2 = nn.ModuleList([nn.Linear(h, h, bias=False) for _ in range(L)]), nn.ModuleList([nn.Linear(h, h, bias=False) for _ in range(L)])
        s.ln_f, s.lm_head = nn.LayerNorm(h), nn.Linear(h, vocab, bias=False)

    def forward(s, input_ids, attention_mask):
        b, t = input_ids.shape
        pos = torch.arange(t, dtype=torch.long).unsqueeze(0).expand(b, t)
        x = s.word_embeddings(input_ids)
        # _prepare_attn_mask: True = masked (future or padding), then masked_fill(finfo.min) into a float mask
        causal = torch.triu(torch.ones((t, t), dtype=torch.bool), diagonal=1)[None, None]
        masked = causal | ~(attention_mask[:, None, None, :].to(torch.bool))
        mask = torch.zeros(masked.shape, dtype=x.dtype).masked_fill(masked, torch.finfo(x.dtype).min)
        for i in range(len(s.attn)):
            hx = s.ln[i](x)
            x = x + s.attn[i](hx, mask, pos) + s.f2[i](F.gelu(s.f1[i](hx)))
        return s.lm_head(s.ln_f(x))


# ---------------------------------------------------------------------------------------------------------
# BLOOM (ALiBi added by baddbmm on [b*h, t, d], bool mask masked_fill(finfo.min), softmax in float32, bmm)
# ---------------------------------------------------------------------------------------------------------
def build_alibi_tensor(attention_mask, nh, dtype):
    b, seq = attention_mask.shape
    closest = 2 ** math.floor(math.log2(nh))
    base = torch.tensor(2 ** (-(2 ** -(math.log2(closest) - 3))), dtype=torch.float32)
    slopes = torch.pow(base, torch.arange(1, 1 + closest, dtype=torch.int32))
    arange_tensor = ((attention_mask.cumsum(dim=-1) - 1) * attention_mask)[:, None, :]
    alibi = slopes[..., None] * arange_tensor
    return alibi.reshape(b * nh, 1, seq).to(dtype)


class BloomAttention(nn.Module):
    def __init__(s, h, nh):
        super().__init__(); s.nh, s.hd, s.h = nh, h // nh, h
        s.query_key_value, s.dense = nn.Linear(h, 3 * h), nn.Linear(h, h)
        s.inv_norm_factor, s.beta = 1.0 / math.sqrt(s.hd), 1.0

    def forward(s, x, alibi, mask):
        b, t, _ = x.shape
        fused = s.query_key_value(x).view(b, t, s.nh, 3, s.hd)
        q, k, v = fused[..., 0, :], fused[..., 1, :], fused[..., 2, :]
        q = q.transpose(1, 2).reshape(b * s.nh, t, s.hd)
        k = k.permute(0, 2, 3, 1).reshape(b * s.nh, s.hd, t)
        v = v.transpose(1, 2).reshape(b * s.nh, t, s.hd)
        scores = alibi.baddbmm(batch1=q, batch2=k, beta=s.beta, alpha=s.inv_norm_factor)
        scores = scores.view(b, s.nh, t, t)
        input_dtype = scores.dtype
        w = torch.masked_fill(scores, mask, torch.finfo(scores.dtype).min)
        probs = F.softmax(w, dim=-1, dtype=torch.float32).to(input_dtype)
        y = torch.bmm(probs.view(b * s.nh, t, t), v)
        y = y.view(b, s.nh, t, s.hd).permute(0, 2, 1, 3).reshape(b, t, s.nh * s.hd)
        return s.dense(y)


class Bloom(nn.Module):
    def __init__(s, vocab=128, h=64, nh=4, L=2):
        super().__init__(); s.nh = nh; s.word_embeddings, s.word_embeddings_layernorm = nn.Embedding(vocab, h), nn.LayerNorm(h)
        s.attn = nn.ModuleList([BloomAttention(h, nh) for _ in range(L)])
        s.ln1, s.ln2 = nn.ModuleList([nn.LayerNorm(h) for _ in range(L)]), nn.ModuleList([nn.LayerNorm(h) for _ in range(L)])
        s.f1, s.f2 = nn.ModuleList([nn.Linear(h, h) for _ in range(L)]), nn.ModuleList([nn.Linear(h, h) for _ in range(L)])
        s.ln_f = nn.LayerNorm(h)

    def forward(s, input_ids, attention_mask):
        b, t = input_ids.shape
        x = s.word_embeddings_layernorm(s.word_embeddings(input_ids))
        alibi = build_alibi_tensor(attention_mask, s.nh, x.dtype)
        # _prepare_attn_mask: bool, True where masked (future or padding)
        causal = torch.triu(torch.ones((t, t), dtype=torch.bool), diagonal=1)[None, None]
        mask = causal | ~(attention_mask[:, None, None, :].to(torch.bool))
        for i in range(len(s.attn)):
            x = x + s.attn[i](s.ln1[i](x), alibi, mask)
            x = x + s.f2[i](F.gelu(s.f1[i](s.ln2[i](x))))
        return s.ln_f(x) @ s.word_embeddings.weight.t()


# ---------------------------------------------------------------------------------------------------------
# T5 (unscaled scores, relative position bias + mask folded into one bias, softmax(float).type_as)
# ---------------------------------------------------------------------------------------------------------
class T5Attention(nn.Module):
    def __init__(s, h, nh, has_bias, bidirectional, nb=32, maxd=128):
        super().__init__(); s.nh, s.hd, s.h, s.bidir, s.nb, s.maxd = nh, h // nh, h, bidirectional, nb, maxd
        s.q, s.k, s.v, s.o = [nn.Linear(h, h, bias=False) for _ in range(4)]
        s.relative_attention_bias = nn.Embedding(nb, nh) if has_bias else None

    def bucket(s, rp):
        nb, ret = s.nb, 0
        if s.bidir:
            nb //= 2; ret = (rp > 0).to(torch.long) * nb; rp = torch.abs(rp)
        else:
            rp = -torch.min(rp, torch.zeros_like(rp))
        exact = nb // 2
        large = exact + (torch.log(rp.float() / exact) / math.log(s.maxd / exact) * (nb - exact)).to(torch.long)
        large = torch.min(large, torch.full_like(large, nb - 1))
        return ret + torch.where(rp < exact, rp, large)

    def compute_bias(s, ql, kl):
        ctx = torch.arange(ql, dtype=torch.long)[:, None]; mem = torch.arange(kl, dtype=torch.long)[None, :]
        values = s.relative_attention_bias(s.bucket(mem - ctx))
        return values.permute([2, 0, 1]).unsqueeze(0)

    def forward(s, x, mask, kv=None, position_bias=None):
        b, t = x.shape[:2]; src = x if kv is None else kv
        shape = lambda z: z.view(b, -1, s.nh, s.hd).transpose(1, 2)
        q, k, v = shape(s.q(x)), shape(s.k(src)), shape(s.v(src))
        scores = torch.matmul(q, k.transpose(3, 2))
        if position_bias is None:
            if s.relative_attention_bias is None:
                position_bias = torch.zeros((1, s.nh, t, k.shape[2]), dtype=scores.dtype)
            else:
                position_bias = s.compute_bias(t, k.shape[2])
            position_bias = position_bias + mask
        scores += position_bias
        w = nn.functional.softmax(scores.float(), dim=-1).type_as(scores)
        y = torch.matmul(w, v).transpose(1, 2).contiguous().view(b, -1, s.h)
        return s.o(y), position_bias


class T5(nn.Module):
    """T5 encoder-decoder: relative bias computed by the first layer and reused, decoder causal self + cross"""
    def __init__(s, vocab=128, h=64, nh=4, L=2):
        super().__init__(); s.shared = nn.Embedding(vocab, h)
        s.enc = nn.ModuleList([T5Attention(h, nh, i == 0, True) for i in range(L)])
        s.dec = nn.ModuleList([T5Attention(h, nh, i == 0, False) for i in range(L)])
        s.cross = nn.ModuleList([T5Attention(h, nh, False, True) for _ in range(L)])
        s.n = nn.ModuleList([RMSNorm(h) for _ in range(5 * L + 2)])
        s.f1, s.f2 = nn.ModuleList([nn.Linear(h, h, bias=False) for _ in range(2 * L)]), nn.ModuleList([nn.Linear(h, h, bias=False) for _ in range(2 * L)])
        s.lm_head = nn.Linear(h, vocab, bias=False)

    def forward(s, input_ids, attention_mask, decoder_input_ids):
        L = len(s.enc); n = iter(s.n)
        x = s.shared(input_ids)
        enc_mask = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        pb = None
        for i in range(L):
            a, pb = s.enc[i](next(n)(x), enc_mask, position_bias=pb); x = x + a
            x = x + s.f2[i](F.relu(s.f1[i](next(n)(x))))
        enc = next(n)(x)
        y = s.shared(decoder_input_ids); b, t = decoder_input_ids.shape
        seq_ids = torch.arange(t)
        causal = (seq_ids[None, None, :].repeat(b, t, 1) <= seq_ids[None, :, None]).to(y.dtype)
        dec_mask = (1.0 - causal[:, None, :, :]) * torch.finfo(y.dtype).min
        pb = cb = None
        for i in range(L):
            a, pb = s.dec[i](next(n)(y), dec_mask, position_bias=pb); y = y + a
            a, cb = s.cross[i](next(n)(y), enc_mask, kv=enc, position_bias=cb); y = y + a
            y = y + s.f2[L + i](F.relu(s.f1[L + i](next(n)(y))))
        return s.lm_head(next(n)(y) * (y.shape[-1] ** -0.5))


# ---------------------------------------------------------------------------------------------------------
# BART / Marian (q scaled by hd^-0.5 after the projection, bmm on [b*h, t, d], mask added in [b, h, t, s] view)
# ---------------------------------------------------------------------------------------------------------
class BartAttention(nn.Module):
    def __init__(s, h, nh):
        super().__init__(); s.nh, s.hd, s.h = nh, h // nh, h; s.scaling = s.hd ** -0.5
        s.k_proj, s.v_proj, s.q_proj, s.out_proj = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)

    def _shape(s, x, seq, bsz):
        return x.view(bsz, seq, s.nh, s.hd).transpose(1, 2).contiguous()

    def forward(s, x, kv=None, mask=None, past=None):
        bsz, tgt, _ = x.size()
        q = s.q_proj(x) * s.scaling
        if kv is not None and past is not None:  # cross-attention with cached keys / values
            k, v = past
        elif kv is not None:
            k, v = s._shape(s.k_proj(kv), -1, bsz), s._shape(s.v_proj(kv), -1, bsz)
        else:
            k, v = s._shape(s.k_proj(x), -1, bsz), s._shape(s.v_proj(x), -1, bsz)
            if past is not None:
                k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        present = (k, v)
        proj_shape = (bsz * s.nh, -1, s.hd)
        q = s._shape(q, tgt, bsz).view(*proj_shape)
        k, v = k.reshape(*proj_shape), v.reshape(*proj_shape)
        src = k.size(1)
        w = torch.bmm(q, k.transpose(1, 2))
        if mask is not None:
            w = w.view(bsz, s.nh, tgt, src) + mask
            w = w.view(bsz * s.nh, tgt, src)
        w = nn.functional.softmax(w, dim=-1)
        y = torch.bmm(w, v).view(bsz, s.nh, tgt, s.hd).transpose(1, 2).reshape(bsz, tgt, s.h)
        return s.out_proj(y), present


def sinusoidal_positions(n, dim):
    """Marian's MarianSinusoidalPositionalEmbedding weights: sin in the first half, cos in the second"""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    j = torch.arange(dim // 2, dtype=torch.float32)[None, :]
    ang = pos / torch.pow(10000.0, 2 * j / dim)
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=1)


class Bart(nn.Module):
    """BART encoder-decoder: learned positions (offset 2), post-norm, padding mask in the encoder and in
    cross-attention, causal + padding in the decoder's self-attention"""
    def __init__(s, vocab=128, h=64, nh=4, L=2, maxpos=128):
        super().__init__(); s.shared = nn.Embedding(vocab, h)
        s.epos, s.dpos = nn.Embedding(maxpos + 2, h), nn.Embedding(maxpos + 2, h)
        s.eln, s.dln = nn.LayerNorm(h), nn.LayerNorm(h)
        s.esa, s.dsa, s.dca = [nn.ModuleList([BartAttention(h, nh) for _ in range(L)]) for _ in range(3)]
        s.lns = nn.ModuleList([nn.LayerNorm(h) for _ in range(5 * L)])
        s.f1, s.f2 = nn.ModuleList([nn.Linear(h, h) for _ in range(2 * L)]), nn.ModuleList([nn.Linear(h, h) for _ in range(2 * L)])

    def forward(s, input_ids, attention_mask, decoder_input_ids):
        L = len(s.esa); ln = iter(s.lns)
        x = s.shared(input_ids); t = input_ids.size(1)
        x = s.eln(x + s.epos(torch.arange(0, t, dtype=torch.long) + 2))
        emask = expand_mask(attention_mask, x.dtype, t)
        for i in range(L):
            x = next(ln)(x + s.esa[i](x, mask=emask)[0])
            x = next(ln)(x + s.f2[i](F.gelu(s.f1[i](x))))
        b, td = decoder_input_ids.shape
        y = s.shared(decoder_input_ids)
        y = s.dln(y + s.dpos(torch.arange(0, td, dtype=torch.long) + 2))
        dmask = causal_mask(b, td, None, y.dtype)
        cmask = expand_mask(attention_mask, y.dtype, td)
        for i in range(L):
            y = next(ln)(y + s.dsa[i](y, mask=dmask)[0])
            y = next(ln)(y + s.dca[i](y, kv=x, mask=cmask)[0])
            y = next(ln)(y + s.f2[L + i](F.gelu(s.f1[L + i](y))))
        return y @ s.shared.weight.t()


class MarianDecoder(nn.Module):
    """Marian decoder step with a cache: sinusoidal positions from the past length, self-attention over past + new
    keys (causal), cross-attention to the encoder's hidden states under their padding mask"""
    def __init__(s, vocab=128, h=64, nh=4, L=2, maxpos=128):
        super().__init__(); s.embed_tokens = nn.Embedding(vocab, h); s.scale = math.sqrt(h)
        s.register_buffer("positions", sinusoidal_positions(maxpos, h), persistent=False)
        s.sa, s.ca = nn.ModuleList([BartAttention(h, nh) for _ in range(L)]), nn.ModuleList([BartAttention(h, nh) for _ in range(L)])
        s.lns = nn.ModuleList([nn.LayerNorm(h) for _ in range(3 * L)])
        s.f1, s.f2 = nn.ModuleList([nn.Linear(h, h) for _ in range(L)]), nn.ModuleList([nn.Linear(h, h) for _ in range(L)])
        s.lm_head = nn.Linear(h, vocab)

    def forward(s, input_ids, encoder_hidden_states, encoder_attention_mask, *past):
        b, t = input_ids.shape; past_len = past[0].size(2); ln = iter(s.lns)
        y = s.embed_tokens(input_ids) * s.scale + s.positions[past_len: past_len + t]
        smask = causal_mask(b, t, past_len, y.dtype)
        cmask = expand_mask(encoder_attention_mask, y.dtype, t)
        presents = []
        for i in range(len(s.sa)):
            a, kv = s.sa[i](y, mask=smask, past=(past[2 * i], past[2 * i + 1])); y = next(ln)(y + a); presents += list(kv)
            a, _ = s.ca[i](y, kv=encoder_hidden_states, mask=cmask); y = next(ln)(y + a)
            y = next(ln)(y + s.f2[i](F.silu(s.f1[i](y))))
        return (s.lm_head(y), *presents)


# ---------------------------------------------------------------------------------------------------------
# Whisper (OpenAI's implementation: q and k each scaled by d^-0.25, qk.float() softmax .to(q.dtype))
# ---------------------------------------------------------------------------------------------------------
class WhisperAttention(nn.Module):
    def __init__(s, h, nh):
        super().__init__(); s.nh = nh
        s.query, s.key, s.value, s.out = nn.Linear(h, h), nn.Linear(h, h, bias=False), nn.Linear(h, h), nn.Linear(h, h)

    def forward(s, x, xa=None, mask=None):
        q = s.query(x); src = x if xa is None else xa
        k, v = s.key(src), s.value(src)
        n_batch, n_ctx, n_state = q.shape
        scale = (n_state // s.nh) ** -0.25
        q = q.view(*q.shape[:2], s.nh, -1).permute(0, 2, 1, 3) * scale
        k = k.view(*k.shape[:2], s.nh, -1).permute(0, 2, 3, 1) * scale
        v = v.view(*v.shape[:2], s.nh, -1).permute(0, 2, 1, 3)
        qk = q @ k
        if mask is not None:
            qk = qk + mask[:n_ctx, :n_ctx]
        qk = qk.float()
        w = F.softmax(qk, dim=-1).to(q.dtype)
        return s.out((w @ v).permute(0, 2, 1, 3).flatten(start_dim=2))


class WhisperBlock(nn.Module):
    def __init__(s, h, nh, cross):
        super().__init__(); s.attn, s.attn_ln = WhisperAttention(h, nh), nn.LayerNorm(h)
        s.cross_attn = WhisperAttention(h, nh) if cross else None; s.cross_attn_ln = nn.LayerNorm(h) if cross else None
        s.mlp1, s.mlp2, s.mlp_ln = nn.Linear(h, h), nn.Linear(h, h), nn.LayerNorm(h)

    def forward(s, x, xa=None, mask=None):
        x = x + s.attn(s.attn_ln(x), mask=mask)
        if s.cross_attn is not None:
            x = x + s.cross_attn(s.cross_attn_ln(x), xa)
        return x + s.mlp2(F.gelu(s.mlp1(s.mlp_ln(x))))


class WhisperEncoder(nn.Module):
    """mel [b, 16, 2*frames] -> conv stem (stride 2) -> sinusoidal positions (sliced to the frames) -> 2 blocks"""
    def __init__(s, n_mels=16, h=64, nh=4, L=2, n_ctx=64):
        super().__init__(); s.conv1, s.conv2 = nn.Conv1d(n_mels, h, 3, padding=1), nn.Conv1d(h, h, 3, stride=2, padding=1)
        s.register_buffer("positional_embedding", sinusoidal_positions(n_ctx, h), persistent=False)
        s.blocks = nn.ModuleList([WhisperBlock(h, nh, False) for _ in range(L)]); s.ln_post = nn.LayerNorm(h)

    def forward(s, mel):
        x = F.gelu(s.conv2(F.gelu(s.conv1(mel)))).permute(0, 2, 1)
        x = x + s.positional_embedding[: x.shape[1]]
        for b in s.blocks:
            x = b(x)
        return s.ln_post(x)


class WhisperDecoder(nn.Module):
    """tokens + audio features -> causal self-attention (mask buffer sliced to the tokens) + cross-attention"""
    def __init__(s, vocab=128, h=64, nh=4, L=2, n_ctx=64):
        super().__init__(); s.token_embedding = nn.Embedding(vocab, h); s.positional_embedding = nn.Parameter(torch.randn(n_ctx, h) * 0.02)
        s.blocks = nn.ModuleList([WhisperBlock(h, nh, True) for _ in range(L)]); s.ln = nn.LayerNorm(h)
        s.register_buffer("mask", torch.empty(n_ctx, n_ctx).fill_(-float("inf")).triu_(1), persistent=False)

    def forward(s, tokens, audio_features):
        x = s.token_embedding(tokens) + s.positional_embedding[: tokens.shape[-1]]
        for b in s.blocks:
            x = b(x, audio_features, mask=s.mask)
        return (s.ln(x) @ torch.transpose(s.token_embedding.weight, 0, 1)).float()


# ---------------------------------------------------------------------------------------------------------
# CLIP text encoder (q scaled after the projection, bmm, causal + padding masks each added in the [b,h,t,s] view)
# ---------------------------------------------------------------------------------------------------------
class ClipAttention(nn.Module):
    def __init__(s, h, nh):
        super().__init__(); s.nh, s.hd, s.h = nh, h // nh, h; s.scale = s.hd ** -0.5
        s.k_proj, s.v_proj, s.q_proj, s.out_proj = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)

    def _shape(s, x, seq, bsz):
        return x.view(bsz, seq, s.nh, s.hd).transpose(1, 2).contiguous()

    def forward(s, x, attention_mask, causal_attention_mask):
        bsz, tgt, _ = x.size()
        q = s.q_proj(x) * s.scale
        k, v = s._shape(s.k_proj(x), -1, bsz), s._shape(s.v_proj(x), -1, bsz)
        proj_shape = (bsz * s.nh, -1, s.hd)
        q = s._shape(q, tgt, bsz).view(*proj_shape); k = k.view(*proj_shape); v = v.view(*proj_shape)
        src = k.size(1)
        w = torch.bmm(q, k.transpose(1, 2))
        w = w.view(bsz, s.nh, tgt, src) + causal_attention_mask
        w = w.view(bsz * s.nh, tgt, src)
        w = w.view(bsz, s.nh, tgt, src) + attention_mask
        w = w.view(bsz * s.nh, tgt, src)
        w = nn.functional.softmax(w, dim=-1)
        y = torch.bmm(w, v).view(bsz, s.nh, tgt, s.hd).transpose(1, 2).reshape(bsz, tgt, s.h)
        return s.out_proj(y)


class ClipText(nn.Module):
    def __init__(s, vocab=128, h=64, nh=4, L=2, maxpos=77):
        super().__init__(); s.token_embedding, s.position_embedding = nn.Embedding(vocab, h), nn.Embedding(maxpos, h)
        s.attn = nn.ModuleList([ClipAttention(h, nh) for _ in range(L)])
        s.ln1, s.ln2 = nn.ModuleList([nn.LayerNorm(h) for _ in range(L)]), nn.ModuleList([nn.LayerNorm(h) for _ in range(L)])
        s.f1, s.f2 = nn.ModuleList([nn.Linear(h, h) for _ in range(L)]), nn.ModuleList([nn.Linear(h, h) for _ in range(L)])
        s.final_layer_norm = nn.LayerNorm(h)

    def forward(s, input_ids, attention_mask):
        b, t = input_ids.shape
        x = s.token_embedding(input_ids) + s.position_embedding(torch.arange(t).unsqueeze(0))
        # _build_causal_attention_mask: full(finfo.min).triu_(1)
        causal = torch.empty(b, t, t, dtype=x.dtype).fill_(torch.finfo(x.dtype).min).triu_(1).unsqueeze(1)
        pad = expand_mask(attention_mask, x.dtype, t)
        for i in range(len(s.attn)):
            x = x + s.attn[i](s.ln1[i](x), pad, causal)
            hx = s.ln2[i](x)
            x = x + s.f2[i](s.f1[i](hx) * torch.sigmoid(1.702 * s.f1[i](hx)))
        return s.final_layer_norm(x)


# ---------------------------------------------------------------------------------------------------------
# ModernBERT (global and local layers, packed Wqkv unbound after a transpose, RoPE, eager attention)
# ---------------------------------------------------------------------------------------------------------
class ModernBertAttention(nn.Module):
    def __init__(s, h, nh, local, theta):
        super().__init__(); s.nh, s.hd, s.local = nh, h // nh, local
        s.Wqkv, s.Wo = nn.Linear(h, 3 * h, bias=False), nn.Linear(h, h, bias=False)
        s.rotary = Rotary(s.hd, base=theta)

    def forward(s, x, attention_mask, sliding_window_mask, position_ids):
        bs, _, dim = x.shape
        qkv = s.Wqkv(x).view(bs, -1, 3, s.nh, s.hd)
        cos, sin = s.rotary(position_ids)
        q, k, v = qkv.transpose(3, 1).unbind(dim=2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        w = torch.matmul(q, k.transpose(2, 3)) * s.hd ** -0.5
        w = w + (sliding_window_mask if s.local else attention_mask)
        w = nn.functional.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        y = torch.matmul(w, v).transpose(1, 2).contiguous().view(bs, -1, dim)
        return s.Wo(y)


class ModernBert(nn.Module):
    """ModernBERT: every third layer global (RoPE theta 160000), the others local (|i - j| <= local_attention // 2,
    theta 10000): the local mask is the padding mask filled with finfo.min where abs(rows - rows.T) exceeds it"""
    def __init__(s, vocab=128, h=64, nh=4, L=3, local_attention=8):
        super().__init__(); s.local_attention = local_attention
        s.tok_embeddings, s.norm = nn.Embedding(vocab, h), nn.LayerNorm(h)
        s.attn = nn.ModuleList([ModernBertAttention(h, nh, i % 3 != 0, 160000.0 if i % 3 == 0 else 10000.0) for i in range(L)])
        s.attn_norm = nn.ModuleList([nn.Identity() if i == 0 else nn.LayerNorm(h) for i in range(L)])
        s.mlp_norm = nn.ModuleList([nn.LayerNorm(h) for _ in range(L)])
        s.Wi, s.Wo = nn.ModuleList([nn.Linear(h, 4 * h, bias=False) for _ in range(L)]), nn.ModuleList([nn.Linear(2 * h, h, bias=False) for _ in range(L)])
        s.final_norm = nn.LayerNorm(h)

    def forward(s, input_ids, attention_mask):
        x = s.norm(s.tok_embeddings(input_ids))
        n = input_ids.size(1)
        position_ids = torch.arange(n).unsqueeze(0)
        global_mask = expand_mask(attention_mask, x.dtype, n)
        rows = torch.arange(global_mask.shape[2]).unsqueeze(0)
        distance = torch.abs(rows - rows.T)
        window_mask = (distance <= s.local_attention // 2).unsqueeze(0).unsqueeze(0)
        sliding_window_mask = global_mask.masked_fill(~window_mask, torch.finfo(x.dtype).min)
        for i in range(len(s.attn)):
            x = x + s.attn[i](s.attn_norm[i](x), global_mask, sliding_window_mask, position_ids)
            inp, gate = s.Wi[i](s.mlp_norm[i](x)).chunk(2, dim=-1)
            x = x + s.Wo[i](F.gelu(inp) * gate)
        return s.final_norm(x)


# ---------------------------------------------------------------------------------------------------------
# Longformer-style local + global attention, written with einsum
# ---------------------------------------------------------------------------------------------------------
class LocalGlobal(nn.Module):
    """Every token sees the keys within `window` on either side; tokens flagged in global_attention_mask see and
    are seen by every token. Scores and output by einsum; masked_fill(~keep, finfo.min) plus key padding."""
    def __init__(s, vocab=128, h=64, nh=4, L=2, window=8, maxpos=4096):
        super().__init__(); s.nh, s.hd, s.w = nh, h // nh, window
        s.embed, s.ln = nn.Embedding(vocab, h), nn.LayerNorm(h)
        s.qkv = nn.ModuleList([nn.Linear(h, 3 * h) for _ in range(L)]); s.o = nn.ModuleList([nn.Linear(h, h) for _ in range(L)])
        s.ln1, s.ln2 = nn.ModuleList([nn.LayerNorm(h) for _ in range(L)]), nn.ModuleList([nn.LayerNorm(h) for _ in range(L)])
        s.f1, s.f2 = nn.ModuleList([nn.Linear(h, h) for _ in range(L)]), nn.ModuleList([nn.Linear(h, h) for _ in range(L)])

    def forward(s, input_ids, attention_mask, global_attention_mask):
        b, t = input_ids.shape
        x = s.ln(s.embed(input_ids))
        i = torch.arange(t)[:, None]; j = torch.arange(t)[None, :]
        local = (j - i).abs() <= s.w
        g = global_attention_mask.to(torch.bool)
        keep = local[None] | g[:, :, None] | g[:, None, :]
        keep = (keep & attention_mask.to(torch.bool)[:, None, :])[:, None]
        for l in range(len(s.qkv)):
            q, k, v = s.qkv[l](x).chunk(3, dim=-1)
            q = q.view(b, t, s.nh, s.hd) / math.sqrt(s.hd)
            k, v = k.view(b, t, s.nh, s.hd), v.view(b, t, s.nh, s.hd)
            sc = torch.einsum("bqhd,bkhd->bhqk", q, k)
            sc = sc.masked_fill(~keep, torch.finfo(sc.dtype).min)
            p = torch.softmax(sc, dim=-1)
            y = torch.einsum("bhqk,bkhd->bqhd", p, v).reshape(b, t, s.nh * s.hd)
            x = s.ln1[l](x + s.o[l](y))
            x = s.ln2[l](x + s.f2[l](F.gelu(s.f1[l](x))))
        return x


# ---------------------------------------------------------------------------------------------------------
# the corpus
# ---------------------------------------------------------------------------------------------------------
def ids(b, t, vocab=128, lo=2):
    return torch.randint(lo, vocab, (b, t))


def padding(b, total, pad_last):
    """1/0 attention mask [b, total]: the last row has its last pad_last positions padded"""
    m = torch.ones(b, total, dtype=torch.long)
    if pad_last:
        m[-1, total - pad_last:] = 0
    return m


def past_kv(L, b, kv_heads, past, hd):
    return [torch.randn(b, kv_heads, past, hd) * 0.5 for _ in range(2 * L)]


def past_names(L):
    return [f"past_key_values.{i}.{kind}" for i in range(L) for kind in ("key", "value")]


def present_names(L):
    return [f"present.{i}.{kind}" for i in range(L) for kind in ("key", "value")]


def batch_seq(*names, seq="sequence_length"):
    return {n: {0: "batch_size", 1: seq} for n in names}


def kv_axes(names, seq="past_sequence_length"):
    return {n: {0: "batch_size", 2: seq} for n in names}


B, T, P = 2, 6, 3  # inputs of the export and the first reference: batch 2, 6 new tokens, 3 cached positions
SECOND_BINDING = (1, 4, 7)  # the second reference: batch 1, 4 new tokens, 7 cached positions


def corpus():
    """(name, module builder, inputs builder, input names, output names, dynamic axes, opset, expected sites)"""
    L = 2
    pn, prn = past_names(L), present_names(L)
    tok3 = lambda: (ids(B, T), padding(B, T, 2), torch.zeros(B, T, dtype=torch.long))
    bert_in = ["input_ids", "attention_mask", "token_type_ids"]
    enc = "padding (additive (1 - attention_mask) * finfo.min)"
    yield ("bert", lambda: Bert(), tok3, bert_in, ["last_hidden_state"], batch_seq(*bert_in), 14,
           dict(sites=2, heads=4, head_dim=16, mask=enc, long_seq_ok=False, form="BertSelfAttention: matmul, / sqrt(d), + extended mask; 512 learned positions"))
    yield ("roberta", lambda: Bert(roberta=True), tok3, bert_in, ["last_hidden_state"], batch_seq(*bert_in), 17,
           dict(sites=2, heads=4, head_dim=16, mask=enc, long_seq_ok=False, form="BertSelfAttention; position ids by cumsum of non-padding tokens"))
    yield ("electra", lambda: Bert(emb=32), tok3, bert_in, ["last_hidden_state"], batch_seq(*bert_in), 14,
           dict(sites=2, heads=4, head_dim=16, mask=enc, long_seq_ok=False, form="BertSelfAttention after embeddings_project (32 -> 64)"))
    yield ("distilbert", lambda: DistilBert(), lambda: (ids(B, T), padding(B, T, 2)), ["input_ids", "attention_mask"], ["last_hidden_state"],
           batch_seq("input_ids", "attention_mask"), 14,
           dict(sites=2, heads=4, head_dim=16, mask="key padding: masked_fill((mask == 0).view.expand_as(scores), finfo.min)", long_seq_ok=False,
                form="q / sqrt(d) before the matmul, masked_fill after"))
    yield ("gpt2", lambda: Gpt2(), lambda: (ids(B, T), padding(B, T, 1)), ["input_ids", "attention_mask"], ["logits"],
           batch_seq("input_ids", "attention_mask"), 14,
           dict(sites=2, heads=4, head_dim=16, mask="causal (bool tril buffer, torch.where finfo.min) + additive padding", long_seq_ok=False,
                form="Conv1D addmm, packed qkv split, / full([], sqrt(d))"))
    yield ("gpt2-past", lambda: Gpt2(with_past=True), lambda: (ids(B, T), padding(B, P + T, 1), *past_kv(L, B, 4, P, 16)),
           ["input_ids", "attention_mask", *pn], ["logits", *prn],
           {**batch_seq("input_ids"), "attention_mask": {0: "batch_size", 1: "total_sequence_length"}, **kv_axes(pn), **kv_axes(prn, "total_sequence_length")}, 17,
           dict(sites=2, heads=4, head_dim=16, mask="causal over past + new keys (bool tril buffer sliced [kl - ql: kl, :kl]) + additive padding", long_seq_ok=False,
                past=True, form="GPT-2 with past_key_values: keys concatenated to the cache"))
    yield ("gpt-neox-past", lambda: NeoX(), lambda: (ids(B, T), padding(B, P + T, 0), *past_kv(L, B, 4, P, 16)),
           ["input_ids", "attention_mask", *pn], ["logits", *prn],
           {**batch_seq("input_ids"), "attention_mask": {0: "batch_size", 1: "total_sequence_length"}, **kv_axes(pn), **kv_axes(prn, "total_sequence_length")}, 17,
           dict(sites=2, heads=4, head_dim=16, mask="causal over past + new keys (bool buffer, torch.where(-1e9)) + additive padding", long_seq_ok=False,
                past=True, form="packed qkv sliced per head, partial rotary, baddbmm(zeros, q, kᵀ, alpha=1/sqrt(d)) on [b*h, t, d]"))
    yield ("torch-mha", lambda: TorchMha(), lambda: (ids(B, T), padding(B, T, 1)), ["input_ids", "attention_mask"], ["logits"],
           batch_seq("input_ids", "attention_mask"), 17,
           dict(sites=2, heads=4, head_dim=16, mask="causal (bool triu attn_mask) or-ed with key_padding_mask (attention_mask == 0) by nn.MultiheadAttention, -inf",
                long_seq_ok=False, form="torch.nn.MultiheadAttention(batch_first=True), need_weights=False: in_proj, baddbmm(mask, q, kᵀ) on [b*h, t, d]"))
    bc_past, bc_present = [f"past_key_values.{i}" for i in range(L)], [f"present.{i}" for i in range(L)]
    yield ("gpt-bigcode-past", lambda: BigCode(), lambda: (ids(B, T), padding(B, P + T, 1), *[torch.randn(B, P, 32) * 0.5 for _ in range(L)]),
           ["input_ids", "attention_mask", *bc_past], ["logits", *bc_present],
           {**batch_seq("input_ids"), "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
            **{n: {0: "batch_size", 1: "past_sequence_length"} for n in bc_past}, **{n: {0: "batch_size", 1: "total_sequence_length"} for n in bc_present}}, 17,
           dict(sites=2, heads=4, kv_heads=1, head_dim=16, mask="causal over past + new keys (bool tril buffer sliced, times the padding mask) in the [b, t, h, s] view",
                long_seq_ok=False, past=True, form="GPT-BigCode multi-query: q [b, t*h, d] by baddbmm(zeros, q, kᵀ) against one k, the cache k and v packed [b, s, 2d]"))
    llama_in = ["input_ids", "attention_mask", "position_ids"]
    pos = lambda: torch.arange(P, P + T).unsqueeze(0).expand(B, T).clone()
    yield ("llama-past", lambda: Llama(), lambda: (ids(B, T), padding(B, P + T, 0), pos(), *past_kv(L, B, 2, P, 16)),
           [*llama_in, *pn], ["logits", *prn],
           {**batch_seq("input_ids", "position_ids"), "attention_mask": {0: "batch_size", 1: "total_sequence_length"}, **kv_axes(pn), **kv_axes(prn, "total_sequence_length")}, 17,
           dict(sites=2, heads=4, kv_heads=2, head_dim=16, mask="causal over past + new keys (4d finfo.min mask) + padding", long_seq_ok=True,
                past=True, form="RoPE from position_ids, repeat_kv by expand + reshape, softmax(dtype=float32).to(q.dtype)"))
    yield ("qwen2-past", lambda: Llama(nh=8, nkv=2, qkv_bias=True), lambda: (ids(B, T), padding(B, P + T, 0), pos(), *past_kv(L, B, 2, P, 8)),
           [*llama_in, *pn], ["logits", *prn],
           {**batch_seq("input_ids", "position_ids"), "attention_mask": {0: "batch_size", 1: "total_sequence_length"}, **kv_axes(pn), **kv_axes(prn, "total_sequence_length")}, 14,
           dict(sites=2, heads=8, kv_heads=2, head_dim=8, mask="causal over past + new keys (4d finfo.min mask) + padding", long_seq_ok=True,
                past=True, form="Qwen2: biased q/k/v, RoPE, GQA 8/2 by repeat_kv, softmax in float32"))
    W = 4
    yield ("mistral", lambda: Llama(with_past=False, window=W), lambda: (ids(B, T + 4), padding(B, T + 4, 0), torch.arange(T + 4).unsqueeze(0).expand(B, T + 4).clone()),
           llama_in, ["logits"], batch_seq(*llama_in), 14,
           dict(sites=2, heads=4, kv_heads=2, head_dim=16, mask=f"causal sliding window {W} (keys i-{W} < j <= i; tril(diagonal=-{W}) masked finfo.min) + padding", window=W, long_seq_ok=True,
                form="Mistral: RoPE, GQA by repeat_kv, sliding-window causal mask"))
    yield ("mistral-past", lambda: Llama(window=W, cache_position=True), lambda: (ids(B, T), padding(B, P + T, 0), pos(), *past_kv(L, B, 2, P, 16)),
           [*llama_in, *pn], ["logits", *prn],
           {**batch_seq("input_ids", "position_ids"), "attention_mask": {0: "batch_size", 1: "total_sequence_length"}, **kv_axes(pn), **kv_axes(prn, "total_sequence_length")}, 17,
           dict(sites=2, heads=4, kv_heads=2, head_dim=16, window=W, long_seq_ok=True, past=True,
                mask=f"causal sliding window {W} over past + new keys (cache_position arange comparisons, window OR-ed in) + padding where causal + attention_mask == 0",
                form="Mistral with a KV cache, masks as transformers >= 4.42 builds them from cache_position"))
    yield ("llama-eager-past", lambda: LlamaEager(), lambda: (ids(B, T), padding(B, P + T, 0), pos(), *past_kv(L, B, 2, P, 16)),
           [*llama_in, *pn], ["logits", *prn],
           {**batch_seq("input_ids", "position_ids"), "attention_mask": {0: "batch_size", 1: "total_sequence_length"}, **kv_axes(pn), **kv_axes(prn, "total_sequence_length")}, 17,
           dict(sites=2, heads=4, kv_heads=2, head_dim=16, long_seq_ok=True, past=True,
                mask="causal over past + new keys (cache_position arange comparisons) + padding, sliced to the key length in each layer",
                form="transformers >= 4.42 eager attention: causal_mask = attention_mask[:, :, :, : key_states.shape[-2]] added to the scores"))
    yield ("gemma2", lambda: Gemma2(window=W), lambda: (ids(B, T + 4), padding(B, T + 4, 0), torch.arange(T + 4).unsqueeze(0).expand(B, T + 4).clone()),
           llama_in, ["logits"], batch_seq(*llama_in), 14,
           dict(sites=2, heads=4, kv_heads=2, head_dim=16, window=W, scale=24 ** -0.5, softcap=50.0, long_seq_ok=True,
                mask=f"layer 0: causal sliding window {W} (tril(ones_like(mask), diagonal=-{W}) filled finfo.min over the cache_position mask) + padding; layer 1: causal + padding; both sliced to the keys",
                form="Gemma 2 eager: scale 24^-0.5 on head size 16, scores softcapped tanh(w / 50) * 50, GQA by repeat_kv, final logits softcapped at 30"))
    yield ("llama-sdpa", lambda: LlamaSdpa(), lambda: (ids(B, T), padding(B, T, 0), torch.arange(T).unsqueeze(0).expand(B, T).clone()),
           llama_in, ["logits"], batch_seq(*llama_in), 14,
           dict(sites=2, heads=4, kv_heads=2, head_dim=16, mask="causal and padding as one bool mask, Where(mask, 0, -inf) added to the scores", long_seq_ok=True,
                form="F.scaled_dot_product_attention as torch >= 2.1's TorchScript exporter writes it: scale from Shape(q), sqrt(scale) on Q and Kᵀ"))
    yield ("llama-sdpa-causal", lambda: LlamaSdpa(with_mask=False), lambda: (ids(B, T), torch.arange(T).unsqueeze(0).expand(B, T).clone()),
           ["input_ids", "position_ids"], ["logits"], batch_seq("input_ids", "position_ids"), 14,
           dict(sites=2, heads=4, kv_heads=2, head_dim=16, mask="causal (is_causal: Trilu over ones(L, S), Where(== 0, -inf, 0) added)", long_seq_ok=True,
                form="SDPA with is_causal as torch >= 2.1's TorchScript exporter writes it"))
    yield ("falcon", lambda: Falcon(), lambda: (ids(B, T), padding(B, T, 0)), ["input_ids", "attention_mask"], ["logits"],
           batch_seq("input_ids", "attention_mask"), 17,
           dict(sites=2, heads=4, kv_heads=1, head_dim=16, mask="causal (triu bool | padding) as a finfo.min float mask", long_seq_ok=True,
                form="multi-query: packed qkv view(b, t, h + 2, d), K/V [b, 1, t, d] broadcast by MatMul over heads"))
    yield ("bloom", lambda: Bloom(), lambda: (ids(B, T), padding(B, T, 0)), ["input_ids", "attention_mask"], ["logits"],
           batch_seq("input_ids", "attention_mask"), 14,
           dict(sites=2, heads=4, head_dim=16, mask="causal (bool, masked_fill finfo.min) + ALiBi bias (from attention_mask cumsum) added by baddbmm", long_seq_ok=True,
                form="alibi.baddbmm(q, kᵀ, alpha=1/sqrt(d)) on [b*h, t, d]; softmax(float32) -> view -> bmm"))
    t5_in = ["input_ids", "attention_mask", "decoder_input_ids"]
    yield ("t5", lambda: T5(), lambda: (ids(B, T + 2), padding(B, T + 2, 2), ids(B, T)), t5_in, ["logits"],
           {**batch_seq("input_ids", "attention_mask", seq="encoder_sequence_length"), **batch_seq("decoder_input_ids", seq="decoder_sequence_length")}, 14,
           dict(sites=6, heads=4, head_dim=16, mask="2 encoder self (relative bias + padding), 2 decoder self (causal relative bias + causal), 2 cross (padding); scale 1",
                long_seq_ok=True, form="unscaled matmul scores + position_bias (mask folded in), softmax(scores.float()).type_as"))
    yield ("bart", lambda: Bart(), lambda: (ids(B, T + 2), padding(B, T + 2, 2), ids(B, T)), t5_in, ["logits"],
           {**batch_seq("input_ids", "attention_mask", seq="encoder_sequence_length"), **batch_seq("decoder_input_ids", seq="decoder_sequence_length")}, 14,
           dict(sites=6, heads=4, head_dim=16, mask="2 encoder self (padding), 2 decoder self (causal), 2 cross (padding)", long_seq_ok=False,
                form="q_proj * d^-0.5, bmm on [b*h, t, d], mask added in the [b, h, t, s] view"))
    marian_in = ["input_ids", "encoder_hidden_states", "encoder_attention_mask"]
    yield ("marian-decoder-past", lambda: MarianDecoder(), lambda: (ids(B, T), torch.randn(B, T + 3, 64), padding(B, T + 3, 3), *past_kv(L, B, 4, P, 16)),
           [*marian_in, *pn], ["logits", *prn],
           {**batch_seq("input_ids"), **batch_seq("encoder_hidden_states", "encoder_attention_mask", seq="encoder_sequence_length"),
            **kv_axes(pn), **kv_axes(prn, "total_sequence_length")}, 17,
           dict(sites=4, heads=4, head_dim=16, mask="2 self (causal over past + new keys), 2 cross (encoder padding)", long_seq_ok=False, past=True,
                form="BART attention with a self-attention cache; sinusoidal positions from the past length"))
    yield ("whisper-encoder", lambda: WhisperEncoder(), lambda: (torch.randn(B, 16, 2 * T),), ["mel"], ["last_hidden_state"],
           {"mel": {0: "batch_size", 2: "frames"}}, 17,
           dict(sites=2, heads=4, head_dim=16, mask="none", long_seq_ok=False,
                form="OpenAI Whisper: q and kᵀ each * d^-0.25, qk.float(), softmax .to(q.dtype); conv stem stride 2"))
    yield ("whisper-decoder", lambda: WhisperDecoder(), lambda: (ids(B, T), torch.randn(B, T + 4, 64)), ["tokens", "audio_features"], ["logits"],
           {"tokens": {0: "batch_size", 1: "sequence_length"}, "audio_features": {0: "batch_size", 1: "encoder_sequence_length"}}, 17,
           dict(sites=4, heads=4, head_dim=16, mask="2 self (causal: -inf triu buffer sliced [:n, :n]), 2 cross (none)", long_seq_ok=False,
                form="OpenAI Whisper decoder: q and kᵀ each * d^-0.25, cross-attention to audio_features"))
    yield ("vit", lambda: Vit(), lambda: (torch.randn(B, 3, 32, 32),), ["pixel_values"], ["logits"], {"pixel_values": {0: "batch_size"}}, 14,
           dict(sites=2, heads=4, head_dim=16, mask="none", seq=17, long_seq_ok=False, form="ViTSelfAttention (BERT's), pre-norm, static sequence 17"))
    yield ("clip-text", lambda: ClipText(), lambda: (ids(B, T), padding(B, T, 2)), ["input_ids", "attention_mask"], ["last_hidden_state"],
           batch_seq("input_ids", "attention_mask"), 17,
           dict(sites=2, heads=4, head_dim=16, mask="causal (full(finfo.min).triu_(1)) + padding, each added in the [b, h, t, s] view", long_seq_ok=False,
                form="CLIPAttention: q_proj * d^-0.5, bmm on [b*h, t, d]"))
    yield ("modernbert", lambda: ModernBert(), lambda: (ids(B, T + 6), padding(B, T + 6, 3)), ["input_ids", "attention_mask"], ["last_hidden_state"],
           batch_seq("input_ids", "attention_mask"), 17,
           dict(sites=3, heads=4, head_dim=16, window=4, long_seq_ok=True,
                mask="layer 0 global: padding; layers 1, 2 local: |i - j| <= 4 (abs(rows - rows.T) <= local_attention // 2, masked_fill finfo.min over the padding mask)",
                form="ModernBERT eager: packed Wqkv viewed [b, t, 3, h, d], transpose(3, 1).unbind(2), RoPE, softmax in float32"))
    yield ("longformer-local-global", lambda: LocalGlobal(), lambda: (ids(B, T + 10), padding(B, T + 10, 3), torch.tensor([[1] + [0] * (T + 9)] * B)),
           ["input_ids", "attention_mask", "global_attention_mask"], ["last_hidden_state"],
           batch_seq("input_ids", "attention_mask", "global_attention_mask"), 17,
           dict(sites=2, heads=4, head_dim=16, mask="local band |i - j| <= 8, or a global query or key (global_attention_mask input), and key padding; masked_fill(~keep, finfo.min)",
                window=8, long_seq_ok=True, form="einsum bqhd,bkhd->bhqk and bhqk,bkhd->bqhd on [b, t, h, d]"))


def to_json_tensor(t):
    return {"dtype": {torch.float32: "float32", torch.int64: "int64"}[t.dtype], "dims": list(t.shape),
            "data": [round(float(x), 7) if t.dtype == torch.float32 else int(x) for x in t.flatten().tolist()]}


def ranks(out):
    return [t.dim() for t in (out if isinstance(out, tuple) else (out,))]


def output_axes(name, dyn, inames, rank):
    """an output's dynamic axes: as declared, else batch and (rank 3) the first input's sequence axis"""
    if name in dyn:
        return dyn[name]
    return {0: "batch_size"} if rank < 3 else {0: "batch_size", 1: dyn[inames[0]].get(1, "sequence_length")}


def main():
    global B, T, P
    os.makedirs(OUT, exist_ok=True)
    expected, reference = {}, {}
    for name, build, make_inputs, inames, onames, dyn, opset, exp in corpus():
        torch.manual_seed(sum(map(ord, name)))  # each model's weights and inputs fixed by its name alone
        mod = build().eval()
        args = make_inputs()
        B, T, P = SECOND_BINDING  # make_inputs reads the sizes when called
        args2 = make_inputs()
        B, T, P = 2, 6, 3
        fn = os.path.join(OUT, f"{name}.onnx")
        with torch.no_grad():
            out, out2 = mod(*args), mod(*args2)
            torch.onnx.export(mod, args, fn, opset_version=opset, input_names=inames, output_names=onames,
                              dynamic_axes={**dyn, **{o: output_axes(o, dyn, inames, r) for o, r in zip(onames, ranks(out))}},
                              do_constant_folding=True)
        first = lambda o: o[0] if isinstance(o, tuple) else o
        expected[name] = {"file": f"{name}.onnx", "opset": opset, **exp}
        reference[name] = {"output": onames[0], "bindings": [{"inputs": {n: to_json_tensor(a) for n, a in zip(inames, a_)}, "expected": to_json_tensor(first(o))}
                                                            for a_, o in ((args, out), (args2, out2))]}
        print(f"{name:26s} opset {opset}  {os.path.getsize(fn):8d} bytes")
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(reference, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
