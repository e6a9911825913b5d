"""One-best HLG decoding of CTC log-posteriors with k2 (optional backend).

k2 is imported lazily: this module imports without it, and asking for the
backend where k2 is missing raises a :class:`UserError` naming the fix.  It
runs under Python 3.9 / torch 1.13 (the environment of
``local/make_k2_env.sh``, the newest pair k2 has PyPI wheels for) and under the
main environment when a user installed k2 for their own torch.

Graph conversion (the same HLG.fst that :class:`asr_trainer.decode.wfst.HlgDecoder`
searches; see :mod:`asr_trainer.lang.graph` for its labels):

1. HLG.fst is printed as OpenFst text (``HLG.fst.txt``, cached next to it) and
   read with ``k2.Fsa.from_openfst``; k2 scores are minus the OpenFst costs.
   Final weights become arcs labelled -1 into k2's single final state.
2. Its input labels are ``token_id + 1`` with 0 for epsilon.  In
   ``k2.intersect_dense_pruned`` every arc consumes a frame (label ``l``
   scores column ``l`` of the log-posteriors; 0 is not an epsilon there), so
   the input epsilons are removed first with ``k2.remove_epsilon`` (label 0 =
   epsilon; the word labels of the removed arcs move onto the kept ones,
   making ``aux_labels`` ragged), and then labels ``l > 0`` become ``l - 1``:
   token ids, blank = 0.
3. The result is arc-sorted and cached as ``HLG.k2.pt`` (``Fsa.as_dict()``).

Search: ``cost = graph cost - acoustic_scale * log_prob``, minimised, as in
kaldi-decoder's FasterDecoder; the one-best path of the pruned lattice is
``k2.shortest_path``.

Example::

    dec = K2HlgDecoder(Path("data/lang_phone"), device="cuda")
    hyps = dec.decode_batch([log_probs_1, log_probs_2])   # (T_i, V) float32 each
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from asr_trainer.errors import UserError
from asr_trainer.lang.symbols import num_model_outputs, read_symbols

log = logging.getLogger(__name__)

MISSING_K2 = ("k2 is not installed in this environment: run local/make_k2_env.sh, "
              "or see README 'k2' for GPU installs")
HLG_TEXT = "HLG.fst.txt"
HLG_K2 = "HLG.k2.pt"


def import_k2() -> Any:
    """The k2 module, or a UserError telling how to get it."""
    try:
        import k2
    except ImportError as e:  # also an incompatible torch: k2's .so fails to load
        raise UserError(f"{MISSING_K2} ({e})") from None
    return k2


def k2_available() -> bool:
    """True when ``import k2`` works here."""
    try:
        import_k2()
    except UserError:
        return False
    return True


def _stale(path: Path, source: Path) -> bool:
    return not path.is_file() or path.stat().st_mtime_ns < source.stat().st_mtime_ns


def export_hlg_text(lang_dir: Path) -> Path:
    """Write ``lang_dir/HLG.fst.txt`` (OpenFst text of HLG.fst) unless up to date; needs kaldifst.

    Lines: ``src dst ilabel olabel cost`` and ``state final_cost``, the start
    state's lines first.  Returns the text file's path.
    """
    lang_dir = Path(lang_dir)
    hlg, text = lang_dir / "HLG.fst", lang_dir / HLG_TEXT
    if not hlg.is_file():
        raise UserError(f"{hlg} does not exist (run `asr-trainer lang` first)")
    if not _stale(text, hlg):
        return text
    try:
        import kaldifst
    except ImportError:
        raise UserError(f"{text} is missing or older than {hlg}, and kaldifst is not installed here to "
                        f"write it: `pip install kaldifst`, or in the main environment run `python -c "
                        f"'from asr_trainer.decode.k2_backend import export_hlg_text; "
                        f"export_hlg_text(\"{lang_dir}\")'`") from None
    fst = kaldifst.StdVectorFst.read(str(hlg))
    if fst.start != 0:
        raise UserError(f"{hlg}: start state is {fst.start}, expected 0")
    tmp = text.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(fst.to_str(is_acceptor=False, show_weight_one=True, fst_field_separator=" "))
    tmp.replace(text)
    log.info("wrote %s (%d states)", text, fst.num_states)
    return text


def hlg_text_to_k2(text: str, k2: Any) -> Any:
    """k2 HLG from OpenFst text: input epsilons removed, labels = token ids (blank 0), arc-sorted.

    ``aux_labels`` are word ids (ragged: an arc may carry the words of the
    epsilon arcs removed before it).
    """
    fsa = k2.Fsa.from_openfst(text, acceptor=False)
    fsa = k2.remove_epsilon(fsa)
    labels = fsa.labels.clone()
    fsa.labels = labels - (labels > 0).to(labels.dtype)
    return k2.arc_sort(fsa)


def load_k2_hlg(lang_dir: Path, k2: Any) -> Any:
    """The converted HLG of ``lang_dir`` (cached in ``HLG.k2.pt``; rebuilt when HLG.fst is newer)."""
    import torch

    lang_dir = Path(lang_dir)
    hlg, cache = lang_dir / "HLG.fst", lang_dir / HLG_K2
    if not hlg.is_file():
        raise UserError(f"{hlg} does not exist (run `asr-trainer lang` first)")
    if not _stale(cache, hlg):
        return k2.Fsa.from_dict(torch.load(cache, map_location="cpu"))
    fsa = hlg_text_to_k2(export_hlg_text(lang_dir).read_text(), k2)
    try:
        tmp = cache.with_suffix(f".tmp{os.getpid()}")
        torch.save(fsa.as_dict(), tmp)
        tmp.replace(cache)
    except OSError as e:
        log.warning("could not cache the k2 graph in %s: %s", cache, e)
    return fsa


class K2HlgDecoder:
    """Pruned lattice search of HLG with k2, one-best words; loads the graph once.

    ``search_beam``/``output_beam``/``min_active``/``max_active`` are those of
    ``k2.intersect_dense_pruned``; ``device`` "cpu" or "cuda[:n]" (needs a k2
    built with CUDA). ``max_batch_frames``: output frames intersected at once; memory
    grows with it (on the default-profile HLG, 1.27 M arcs, a 50,000-frame batch took
    23 GB on CPU and was killed by the OOM killer).
    """

    def __init__(
        self, lang_dir: Path, search_beam: float = 15.0, output_beam: float = 8.0,
        min_active: int = 30, max_active: int = 7000, device: str = "cpu",
        acoustic_scale: float = 1.0, max_batch_frames: int = 5_000,
    ):
        self.k2 = import_k2()
        import torch

        if search_beam <= 0 or output_beam <= 0 or acoustic_scale <= 0 or not 0 < min_active <= max_active:
            raise UserError(f"bad k2 decoder settings: search_beam={search_beam}, output_beam={output_beam}, "
                            f"acoustic_scale={acoustic_scale}, min_active={min_active}, max_active={max_active}")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not (torch.cuda.is_available() and self._k2_has_cuda()):
            raise UserError(f"device {device}: this k2/torch has no CUDA (see README 'k2' for GPU installs)")
        self.lang_dir = Path(lang_dir)
        self.num_outputs = num_model_outputs(read_symbols(self.lang_dir / "tokens.txt"))
        self.id2word = {i: w for w, i in read_symbols(self.lang_dir / "words.txt").items()}
        self.beams = (search_beam, output_beam, min_active, max_active)
        self.acoustic_scale = acoustic_scale
        self.max_batch_frames = max_batch_frames
        self.graph = load_k2_hlg(self.lang_dir, self.k2).to(self.device)
        self.num_failed = 0

    def _k2_has_cuda(self) -> bool:
        return bool(getattr(self.k2, "with_cuda", True))

    def decode(self, log_probs: np.ndarray) -> list[str]:
        """One-best words of one (T, V) utterance (the driver's per-utterance interface)."""
        return self.decode_batch([log_probs])[0]

    def decode_batch(self, batch: Any, lengths: Optional[Any] = None) -> list[list[str]]:
        """One-best words of each utterance.

        ``batch``: a list of (T_i, V) float32 log-posterior arrays/tensors, or a
        padded (N, T, V) tensor/array with ``lengths`` (N,) frames.  An
        utterance with no surviving path gives [] and is counted in
        ``num_failed``.
        """
        utts = self._split(batch, lengths)
        out: list[list[str]] = [[] for _ in utts]
        order = sorted(range(len(utts)), key=lambda i: -utts[i].shape[0])
        order = [i for i in order if utts[i].shape[0] > 0]
        start = 0
        while start < len(order):
            chunk, frames = [], 0
            while start < len(order) and (not chunk or frames + utts[order[start]].shape[0] <= self.max_batch_frames):
                chunk.append(order[start])
                frames += utts[order[start]].shape[0]
                start += 1
            for i, words in zip(chunk, self._decode_sorted([utts[i] for i in chunk])):
                out[i] = words
        return out

    def _split(self, batch: Any, lengths: Optional[Any]) -> list[np.ndarray]:
        if lengths is not None:
            padded = _to_numpy(batch)
            lens = [int(n) for n in _to_numpy(lengths).reshape(-1)]
            if padded.ndim != 3 or len(lens) != padded.shape[0] or max(lens, default=0) > padded.shape[1]:
                raise UserError(f"expected a padded (N, T, V) batch with N lengths <= T, got shape "
                                f"{padded.shape} and {len(lens)} lengths")
            utts = [padded[i, :n] for i, n in enumerate(lens)]
        else:
            utts = [_to_numpy(x) for x in batch]
        utts = [x.astype(np.float32, copy=False) for x in utts]
        for x in utts:
            if x.ndim != 2:
                raise UserError(f"expected (T, V) log-probabilities, got shape {x.shape}")
            if x.shape[1] != self.num_outputs:
                raise UserError(f"model has {x.shape[1]} outputs but {self.lang_dir} has "
                                f"{self.num_outputs} tokens")
        return utts

    def _decode_sorted(self, utts: Sequence[np.ndarray]) -> list[list[str]]:
        """Decode utterances sorted by decreasing length (k2's DenseFsaVec wants that)."""
        import torch

        k2 = self.k2
        max_t = utts[0].shape[0]
        padded = np.zeros((len(utts), max_t, self.num_outputs), dtype=np.float32)
        for i, x in enumerate(utts):
            padded[i, : x.shape[0]] = x
        log_probs = torch.from_numpy(padded * self.acoustic_scale).to(self.device)
        segments = torch.tensor([[i, 0, x.shape[0]] for i, x in enumerate(utts)], dtype=torch.int32)
        dense = k2.DenseFsaVec(log_probs, segments)
        search_beam, output_beam, min_active, max_active = self.beams
        lattice = k2.intersect_dense_pruned(
            self.graph, dense, search_beam=search_beam, output_beam=output_beam,
            min_active_states=min_active, max_active_states=max_active)
        best = k2.shortest_path(lattice, use_double_scores=True)
        return [self._words(ids) for ids in self._word_ids(best)]

    def _word_ids(self, best: Any) -> list[list[int]]:
        """Per sequence of the one-best FsaVec, its word ids (labels <= 0 dropped), in path order."""
        k2 = self.k2
        aux = best.aux_labels
        if isinstance(aux, k2.RaggedTensor):
            aux = aux.remove_values_leq(0)
            shape = best.arcs.shape().compose(aux.shape).remove_axis(1).remove_axis(1)
            ragged = k2.RaggedTensor(shape, aux.values)
        else:
            ragged = k2.RaggedTensor(best.arcs.shape().remove_axis(1), aux).remove_values_leq(0)
        num_arcs = best.arcs.shape().remove_axis(1).row_splits(1).diff().tolist()
        self.num_failed += sum(n == 0 for n in num_arcs)
        if any(n == 0 for n in num_arcs):
            log.warning("k2 HLG decoding found no path for %d utterance(s)", sum(n == 0 for n in num_arcs))
        return ragged.tolist()

    def _words(self, ids: Sequence[int]) -> list[str]:
        return [self.id2word[i] for i in ids]


def _to_numpy(x: Any) -> np.ndarray:
    """A numpy array of a torch tensor (any device) or array-like."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def make_k2_decoder(lang_dir: Path, beam: float = 15.0, max_active: int = 7000, min_active: int = 30,
                    device: str = "cpu", output_beam: float = 8.0) -> K2HlgDecoder:
    """The entry point for ``asr-trainer decode --decoder k2``: settings named as in DecodeConfig.

    ``beam`` is k2's search beam.  Raises UserError when k2 is missing.
    """
    return K2HlgDecoder(lang_dir, search_beam=beam, output_beam=output_beam,
                        min_active=max(min_active, 1), max_active=max_active, device=device)
