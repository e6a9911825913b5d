"""One-best decoding of CTC log-posteriors through HLG with kaldi-decoder.

Label convention (checked against kaldi-decoder's source,
``kaldi-decoder/csrc/decodable-ctc.cc``): ``DecodableCtc.LogLikelihood(frame,
index)`` returns ``log_probs[frame, index - 1]`` -- graph input labels are
one-based because OpenFst's label 0 is epsilon.  HLG's input labels are
therefore ``token_id + 1`` (blank = 1), which is how
:func:`asr_trainer.lang.graph.build_ctc_topo` builds H, and its output labels
are words.txt ids.  ``FasterDecoder`` minimises cost = -(score), so the
acoustic score of a frame is ``acoustic_scale * log_probs[t, token]`` and the
graph cost (LM, in -ln units) is added unscaled.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from asr_trainer.errors import UserError
from asr_trainer.lang.symbols import num_model_outputs, read_symbols

log = logging.getLogger(__name__)


class HlgDecoder:
    """Viterbi beam search of HLG; loads the graph once.

    Example::

        dec = HlgDecoder(Path("data/lang_phone"))
        words = dec.decode(log_probs)   # log_probs: (T, V) float32, V = Tokenizer.num_outputs
    """

    def __init__(
        self, lang_dir: Path, beam: float = 16.0, max_active: int = 7000,
        min_active: int = 30, acoustic_scale: float = 1.0,
    ):
        import kaldi_decoder
        import kaldifst

        self.lang_dir = Path(lang_dir)
        hlg_path = self.lang_dir / "HLG.fst"
        if not hlg_path.is_file():
            raise UserError(f"{hlg_path} does not exist (run `asr-trainer lang` first)")
        if beam <= 0 or acoustic_scale <= 0 or not 0 < min_active <= max_active:
            raise UserError(f"bad decoder settings: beam={beam}, acoustic_scale={acoustic_scale}, "
                            f"min_active={min_active}, max_active={max_active}")
        self.num_outputs = num_model_outputs(read_symbols(self.lang_dir / "tokens.txt"))
        self.id2word = {i: w for w, i in read_symbols(self.lang_dir / "words.txt").items()}
        self.acoustic_scale = acoustic_scale
        self.graph = kaldifst.StdVectorFst.read(str(hlg_path))
        self.options = kaldi_decoder.FasterDecoderOptions(
            beam=beam, max_active=max_active, min_active=min_active)
        self.num_failed = 0

    def decode(self, log_probs: np.ndarray) -> list[str]:
        """One-best words of one utterance.

        ``log_probs``: (T, V) CTC log-posteriors (natural log), V = num_outputs.
        Returns [] (and counts it in ``num_failed``) when no path reaches a
        final state.
        """
        import kaldi_decoder
        import kaldifst

        feats = self._check(log_probs)
        if feats.shape[0] == 0:
            return []
        decoder = kaldi_decoder.FasterDecoder(self.graph, self.options)
        decoder.decode(kaldi_decoder.DecodableCtc(feats))
        ok, lattice = decoder.get_best_path()
        if not ok:
            self.num_failed += 1
            log.warning("HLG decoding found no path (%d frames)", feats.shape[0])
            return []
        _, _, word_ids, _ = kaldifst.get_linear_symbol_sequence(lattice)
        return [self.id2word[i] for i in word_ids]

    def decode_batch(self, batch: Sequence[np.ndarray]) -> list[list[str]]:
        """:meth:`decode` of each (T_i, V) array."""
        return [self.decode(x) for x in batch]

    def _check(self, log_probs: np.ndarray) -> np.ndarray:
        x = np.asarray(log_probs, dtype=np.float32)
        if x.ndim != 2:
            raise UserError(f"expected (T, V) log-probabilities, got shape {x.shape}")
        if x.shape[1] != self.num_outputs:
            raise UserError(f"model has {x.shape[1]} outputs but {self.lang_dir} has "
                            f"{self.num_outputs} tokens")
        return np.ascontiguousarray(x * self.acoustic_scale)
