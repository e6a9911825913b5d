"""Decoding graphs with kaldifst: L (lexicon), G (grammar), H (CTC topology), HLG.

Label conventions (who reads them: :class:`asr_trainer.decode.wfst.HlgDecoder`):

* L, G and LG use tokens.txt ids on the token side and words.txt ids on the
  word side; 0 is epsilon on both (tokens.txt's id 0 is the blank, which never
  appears on L).
* H's *input* labels are ``token_id + 1`` (blank = 1, unit i = i + 1), because
  OpenFst reserves label 0 for epsilon and kaldi-decoder's ``DecodableCtc``
  scores input label ``i`` with column ``i - 1`` of the (T, V) log-posterior
  matrix.  H's output labels are token ids, with 0 for blank and for repeats.
* Disambiguation symbols (``#0`` for G's back-off arcs, ``#1..`` on L) are
  passed through H by self-loops with epsilon input, so HLG = H o LG has them
  removed (replaced by epsilon) on its input side.

HLG is the graph the decoder searches: input labels token_id + 1 (or 0 for
non-emitting arcs), output labels word ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import kaldifst

from asr_trainer.errors import UserError
from asr_trainer.lang.lexicon import Entry


def build_lexicon_fst(
    entries: Sequence[Entry], tokens: Mapping[str, int], words: Mapping[str, int]
) -> kaldifst.StdVectorFst:
    """L: tokens -> words, one loop per entry through state 0 (start, final).

    ``entries`` carry their disambiguation symbols (:func:`add_disambig`); a
    ``#0:#0`` self-loop on state 0 lets G's back-off symbol through.
    """
    lines = []
    next_state = 1
    for word, units in entries:
        ids = [tokens[u] for u in units]
        src = 0
        for i, token in enumerate(ids):
            dst = 0 if i == len(ids) - 1 else next_state
            next_state += dst != 0
            lines.append(f"{src} {dst} {token} {words[word] if i == 0 else 0}")
            src = dst
    lines.append(f"0 0 {tokens['#0']} {words['#0']}")
    lines.append("0")
    fst = kaldifst.compile("\n".join(lines) + "\n")
    kaldifst.arcsort(fst, sort_type="olabel")
    return fst


def build_ctc_topo(num_outputs: int, disambig_ids: Sequence[int]) -> kaldifst.StdVectorFst:
    """H: the standard CTC topology over ``num_outputs`` tokens (blank = 0).

    State s = last token read (0 = blank, the start).  From every state, token
    t goes to state t with input t + 1 and output t, except that blank and a
    repeat of s (s -> s) output epsilon; a repeated unit therefore needs a blank
    in between.  Every state is final.  Each disambiguation id d gets an
    ``eps:d`` self-loop on every state.  Size: V^2 + V * len(disambig_ids) arcs.
    """
    lines = []
    for s in range(num_outputs):
        for t in range(num_outputs):
            lines.append(f"{s} {t} {t + 1} {0 if t in (0, s) else t}")
        lines.extend(f"{s} {s} 0 {d}" for d in disambig_ids)
    lines.extend(str(s) for s in range(num_outputs))
    fst = kaldifst.compile("\n".join(lines) + "\n")
    kaldifst.arcsort(fst, sort_type="olabel")
    return fst


def build_grammar_fst(arpa: Path, words_txt: Path, out: Path) -> kaldifst.StdVectorFst:
    """G from an ARPA LM with kaldilm (Kaldi's arpa2fst): back-off arcs carry
    ``#0`` on the input side, ``<s>``/``</s>`` become epsilon; ilabel-sorted."""
    import kaldilm

    try:
        kaldilm.arpa2fst(
            input_arpa=str(arpa), output_fst=str(out), disambig_symbol="#0",
            read_symbol_table=str(words_txt), max_arpa_warnings=10,
        )
    except RuntimeError as e:
        raise UserError(f"arpa2fst failed on {arpa}: {e}") from e
    return kaldifst.StdVectorFst.read(str(out))


def compose_lg(lexicon: kaldifst.StdVectorFst, grammar: kaldifst.StdVectorFst) -> kaldifst.StdVectorFst:
    """det(min(L o G)), ilabel-sorted; disambiguation symbols still present."""
    kaldifst.arcsort(lexicon, sort_type="olabel")
    kaldifst.arcsort(grammar, sort_type="ilabel")
    lg = kaldifst.compose(lexicon, grammar)
    kaldifst.determinize_star(lg)
    kaldifst.minimize_encoded(lg)
    kaldifst.arcsort(lg, sort_type="ilabel")
    return lg


def compose_hlg(ctc_topo: kaldifst.StdVectorFst, lg: kaldifst.StdVectorFst) -> kaldifst.StdVectorFst:
    """HLG = H o LG, trimmed and ilabel-sorted for the decoder."""
    kaldifst.arcsort(lg, sort_type="ilabel")
    hlg = kaldifst.compose(ctc_topo, lg, connect=True)
    kaldifst.arcsort(hlg, sort_type="ilabel")
    if hlg.num_states == 0:
        raise UserError("HLG is empty: the lexicon and the LM share no word")
    return hlg


def num_arcs(fst: kaldifst.StdVectorFst) -> int:
    """Total number of arcs (for logging sizes)."""
    return sum(fst.num_arcs(s) for s in kaldifst.StateIterator(fst))
