"""A small byte-level transformer for attnopt's trained fixtures: positions by RoPE or ALiBi, computed in the graph
from Range (so the exported ONNX model runs at any length), attention written plainly as MatMul -> Softmax -> MatMul
so attnopt's recognizer sees it, and an optional causal mask built from Range/Less/Where.

ALiBi is written as BLOOM writes it: a bias slope_h * j on key j, [1, H, 1, T], equal under the causal softmax to
slope_h * (j - i) (a constant per row); slopes 2^(-8 h / H), h = 1..H (Press et al.).
"""
import math

import torch
from torch import nn

VOCAB = 256  # the byte values
MASK_ID = 256  # the masked-byte token of the encoder (its embedding table has one more row)


def alibi_slopes(heads: int) -> torch.Tensor:
    """ALiBi's head slopes 2^(-8 h / H), h = 1..H."""
    return torch.tensor([2.0 ** (-8.0 * h / heads) for h in range(1, heads + 1)])


def rope(x: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding of x [B, H, T, Dh], angles = position * inv_freq (rotate-half form)."""
    t = x.shape[2]
    pos = torch.arange(t, device=x.device).to(x.dtype)
    ang = pos[:, None] * inv_freq[None, :]  # [T, Dh/2]
    cos, sin = torch.cos(ang), torch.sin(ang)
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class SelfAttention(nn.Module):
    def __init__(self, d: int, heads: int, causal: bool, position: str = 'rope'):
        super().__init__()
        self.heads, self.head_dim, self.causal, self.position = heads, d // heads, causal, position
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.register_buffer('inv_freq', 1.0 / (10000.0 ** (torch.arange(0, self.head_dim, 2).float() / self.head_dim)))
        self.register_buffer('slopes', alibi_slopes(heads).reshape(1, heads, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (z.reshape(b, t, self.heads, self.head_dim).transpose(1, 2) for z in (q, k, v))
        if self.position == 'rope':
            q, k = rope(q, self.inv_freq), rope(k, self.inv_freq)
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        if self.position == 'alibi':
            keys = torch.arange(t, device=x.device).to(scores.dtype)
            scores = scores + self.slopes * keys.reshape(1, 1, 1, t)  # [1, H, 1, T]
        if self.causal:
            i = torch.arange(t, device=x.device)
            future = i[:, None] < i[None, :]  # key j after query i
            scores = scores.masked_fill(future, float('-inf'))
        probs = torch.softmax(scores, dim=-1)
        y = torch.matmul(probs, v).transpose(1, 2).reshape(b, t, d)
        return self.out(y)


class Block(nn.Module):
    def __init__(self, d: int, heads: int, causal: bool, position: str = 'rope'):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = SelfAttention(d, heads, causal, position)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class ByteTransformer(nn.Module):
    """input_ids [B, T] int64 -> logits [B, T, 256]."""

    def __init__(self, d: int, heads: int, layers: int, causal: bool, position: str = 'rope'):
        super().__init__()
        self.embed = nn.Embedding(VOCAB + (0 if causal else 1), d)
        self.blocks = nn.ModuleList([Block(d, heads, causal, position) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, VOCAB)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(input_ids)
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln(x))
