"""The temporal gate of SRTG: the soft-nearest-neighbour cycle-consistency check (Temporal Cycle-Consistency,
Dwibedi et al. 2019, https://arxiv.org/abs/1904.07846) under selectable similarities, . The model-level
diagnostics (per-block pass rates) and warm-up switch of the gated SR blocks live beside the block, in
:mod:`network.srtg`.

A check compares two frame sequences ``u, v`` of shape ``(B,T,C)``. ``SIMILARITIES`` names the ways to
compare them (``raw`` is the default and the formula docs/model_zoo.md describes); a block's gate applies one to
its pooled features ``s`` and recurrent states ``r`` (both ``(B,C,T)``) through :func:`gate_keep`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

DEFAULT_SIMILARITY = "raw"
DEFAULT_TEMPERATURE = 0.1  # TCC's published softmax temperature
_EPS = 1e-6


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(B,T,C), (B,S,C) -> (B,T,S)`` squared L2 over channels (broadcast, so no autocast-lowered matmul)."""
    return (a.unsqueeze(2) - b.unsqueeze(1)).pow(2).sum(-1)


def _negative_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(B,T,C), (B,S,C) -> (B,T,S)`` minus the cosine similarity of every frame pair (lower = closer)."""
    a = a / a.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    b = b / b.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    return -(a.unsqueeze(2) * b.unsqueeze(1)).sum(-1)


def standardise_over_time(u: torch.Tensor) -> torch.Tensor:
    """``(B,T,C) -> (B,T,C)``: every channel of every sequence shifted and scaled to mean 0, std 1 over T."""
    centred = u - u.mean(dim=1, keepdim=True)
    return centred / centred.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(_EPS)


@dataclass(frozen=True)
class Similarity:
    """How the check compares two frame sequences.

    ``cost(a, b)`` is ``(B,T,C), (B,S,C) -> (B,T,S)``, lower = closer; the soft nearest neighbour weighs frames
    by ``softmax(-cost * gain(C, tau))`` (``gain=None``: by ``softmax(-cost)``, the unscaled formula) and the
    nearest frame is ``argmin cost``. ``standardise`` standardises each sequence over time first;
    ``recalibrated`` makes a block compare ``s`` with ``s*r`` (its recalibrated pooled features) instead of ``r``.
    ``scale_invariant``: scaling either sequence by a positive number never changes the decision.
    """

    cost: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    gain: Callable[[int, float], float] | None
    standardise: bool = False
    recalibrated: bool = False
    scale_invariant: bool = False
    doc: str = ""


def _tcc_gain(channels: int, temperature: float) -> float:
    return 1.0 / (channels * temperature)


def _cosine_gain(channels: int, temperature: float) -> float:
    return 1.0 / temperature


SIMILARITIES: dict[str, Similarity] = {
    "raw": Similarity(_squared_distances, None, doc="-|u-v|^2 (the paper's formula, unscaled)"),
    "tcc": Similarity(_squared_distances, _tcc_gain, doc="-|u-v|^2 / C / tau (Dwibedi et al. 2019)"),
    "cosine": Similarity(_negative_cosine, _cosine_gain, scale_invariant=True, doc="cos(u, v) / tau"),
    "tstd": Similarity(_squared_distances, _tcc_gain, standardise=True, scale_invariant=True,
                       doc="tcc on sequences standardised over time per channel"),
    "recal": Similarity(_squared_distances, _tcc_gain, recalibrated=True,
                        doc="tcc between the pooled features s and the recalibrated s*r"),
}


def get_similarity(name: str) -> Similarity:
    """The registered similarity ``name``; ``ValueError`` listing the choices otherwise."""
    if name not in SIMILARITIES:
        raise ValueError(f"gate similarity must be one of {', '.join(SIMILARITIES)}, got '{name}'")
    return SIMILARITIES[name]


def check_temperature(temperature: float) -> float:
    """``temperature`` as a float; ``ValueError`` unless it is a finite number > 0."""
    t = float(temperature)
    if not (t > 0 and t != float("inf")):
        raise ValueError(f"gate temperature must be a finite number > 0, got {temperature}")
    return t


def cycle_back_frames(u: torch.Tensor, v: torch.Tensor, similarity: str = DEFAULT_SIMILARITY,
                      temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """One TCC direction per frame. ``u, v`` are ``(B,T,C)`` frame sequences; returns ``(B,T)`` bool.

    For every frame ``u_i`` the soft nearest neighbour in ``v`` is ``v~_i = sum_j softmax_j(-cost(u_i, v_j)) v_j``
    (cost scaled by the similarity's gain); frame i cycles back when the nearest frame of ``u`` to ``v~_i`` is
    ``u_i`` itself. The decision is a hard argmin, so it is computed on detached float32 copies.
    ``standardise`` similarities expect already standardised inputs (see :func:`consistent_frames`).
    """
    sim = get_similarity(similarity)
    u = u.detach().float()
    v = v.detach().float()
    cost = sim.cost(u, v)  # (B,T,T)
    logits = -cost if sim.gain is None else -cost * sim.gain(u.shape[-1], temperature)
    alpha = torch.softmax(logits, dim=-1)
    v_soft = (alpha.unsqueeze(-1) * v.unsqueeze(1)).sum(2)  # (B,T,C)
    back = sim.cost(v_soft, u).argmin(dim=-1)  # (B,T)
    return back == torch.arange(u.shape[1], device=u.device)


def cycle_back_to_self(u: torch.Tensor, v: torch.Tensor, similarity: str = DEFAULT_SIMILARITY,
                       temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """``(B,T,C), (B,T,C) -> (B,)`` bool: every frame of ``u`` cycles back through ``v`` (:func:`cycle_back_frames`)."""
    return cycle_back_frames(u, v, similarity, temperature).all(dim=-1)


def consistent_frames(u: torch.Tensor, v: torch.Tensor, similarity: str = DEFAULT_SIMILARITY,
                      temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """``(B,T,C), (B,T,C) -> (B,T)`` bool: frame i cycles back in both directions (u->v->u AND v->u->v)."""
    if get_similarity(similarity).standardise:
        u, v = standardise_over_time(u.detach().float()), standardise_over_time(v.detach().float())
    return cycle_back_frames(u, v, similarity, temperature) & cycle_back_frames(v, u, similarity, temperature)


def cycle_consistent(u: torch.Tensor, v: torch.Tensor, similarity: str = DEFAULT_SIMILARITY,
                     temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """``(B,T,C), (B,T,C) -> (B,)`` bool: every frame consistent in both directions (the sample passes)."""
    return consistent_frames(u, v, similarity, temperature).all(dim=-1)


def gate_frames(s: torch.Tensor, r: torch.Tensor, similarity: str = DEFAULT_SIMILARITY,
                temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """Per-frame check of an SR block: pooled ``s`` and recurrent ``r``, both ``(B,C,T)`` -> ``(B,T)`` bool."""
    other = s * r if get_similarity(similarity).recalibrated else r
    return consistent_frames(s.transpose(1, 2), other.transpose(1, 2), similarity, temperature)


def gate_keep(s: torch.Tensor, r: torch.Tensor, similarity: str = DEFAULT_SIMILARITY,
              temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """An SR block's gate: ``(B,C,T), (B,C,T) -> (B,)`` bool, True where every frame is consistent."""
    return gate_frames(s, r, similarity, temperature).all(dim=-1)
