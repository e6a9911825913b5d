"""The lang stage: lexicon, tokens, words, n-gram LM and the HLG graph.

``prepare_lang`` writes to ``out_dir``::

    tokens.txt        <blk> 0, units 1..V-1, then #0, #1, ... (not model outputs)
    words.txt         <eps> 0, <UNK> 1, words, #0, <s>, </s>
    lexicon.txt       word units...  (all pronunciations; no disambiguation symbols)
    lexicon_disambig.txt
    bpe.model         (units="bpe<N>" only; piece id == token id)
    lm/G_<n>_gram.arpa our own interpolated modified Kneser-Ney LM
    L_disambig.fst    G.fst   HLG.fst
    lang.json         the settings the directory was built with

Units: ``"phone"`` -- CMUdict's 39 phones (stress removed) plus ``SPN`` for
``<UNK>``; silence is left to the CTC blank.  ``"bpe<N>"`` -- a sentencepiece BPE
model of at most N pieces (``<blk>`` and ``<unk>`` included) trained on the
transcripts.  The vocabulary is every word of the transcripts and the LM text
(for phones: those CMUdict knows; the others count as ``<UNK>`` in the LM).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Sequence

from asr_trainer.errors import UserError
from asr_trainer.lang import bpe, graph, lexicon
from asr_trainer.lang.ngram import KneserNeyLM
from asr_trainer.lang.pronunciations import load_cmudict
from asr_trainer.lang.symbols import (
    BLANK, BOS, EOS, EPSILON, UNK_WORD, disambig_symbols, num_model_outputs, read_symbols,
    write_symbols,
)

log = logging.getLogger(__name__)

OUTPUTS = ("tokens.txt", "words.txt", "lexicon.txt", "L_disambig.fst", "G.fst", "HLG.fst", "lang.json")


def arpa_path(out_dir: Path, ngram_order: int) -> Path:
    """Where the ARPA LM of ``out_dir`` lives."""
    return Path(out_dir) / "lm" / f"G_{ngram_order}_gram.arpa"


def read_lm_text(lm_text: Path) -> list[list[str]]:
    """One sentence a line, upper-cased, split on white space; empty lines skipped."""
    if not Path(lm_text).is_file():
        raise UserError(f"LM text {lm_text} does not exist")
    sents = [line.upper().split() for line in Path(lm_text).read_text().splitlines()]
    sents = [s for s in sents if s]
    if not sents:
        raise UserError(f"LM text {lm_text} is empty")
    return sents


def prepare_lang(
    transcripts: Sequence[str], lm_text: Path, units: str, out_dir: Path, ngram_order: int = 3
) -> None:
    """Build the lang directory ``out_dir`` (see the module docstring).

    Idempotent: when every output exists (and ``lang.json`` matches) it logs
    "already done" and returns; otherwise the whole directory is rebuilt.
    """
    out_dir = Path(out_dir)
    settings = {"units": units, "ngram_order": ngram_order}
    if _already_done(out_dir, settings):
        log.info("lang: %s already done, skipping", out_dir)
        return
    _check_units(units)
    if ngram_order < 1:
        raise UserError(f"ngram_order must be >= 1, got {ngram_order}")
    start = time.perf_counter()
    sentences = read_lm_text(lm_text)
    (out_dir / "lm").mkdir(parents=True, exist_ok=True)
    vocab = {w for t in transcripts for w in t.upper().split()} | {w for s in sentences for w in s}
    entries, unit_list = _lexicon(transcripts, vocab, units, out_dir)
    _write_tables(entries, unit_list, out_dir)
    lm = KneserNeyLM.estimate(sentences, ngram_order, vocab={w for w, _ in entries})
    lm.write_arpa(arpa_path(out_dir, ngram_order))
    _build_graphs(out_dir, ngram_order)
    (out_dir / "lang.json").write_text(json.dumps(settings, indent=1) + "\n")
    log.info("lang: %s done in %.1f s", out_dir, time.perf_counter() - start)


def _check_units(units: str) -> None:
    if units != "phone" and bpe.parse_bpe_units(units) is None:
        raise UserError(f"units must be 'phone' or 'bpe<N>' (e.g. bpe500), got {units!r}")


def _already_done(out_dir: Path, settings: dict) -> bool:
    if not all((out_dir / name).is_file() for name in OUTPUTS):
        return False
    built = json.loads((out_dir / "lang.json").read_text())
    if built != settings:
        raise UserError(
            f"{out_dir} was built with {built}, not {settings}: use another --out-dir or delete it"
        )
    return True


def _lexicon(
    transcripts: Sequence[str], vocab: set[str], units: str, out_dir: Path
) -> tuple[list[lexicon.Entry], list[str]]:
    """Lexicon entries and the unit inventory (tokens 1..V-1, in order)."""
    size = bpe.parse_bpe_units(units)
    if size is None:
        cmudict = load_cmudict()
        entries, missing = lexicon.phone_lexicon(vocab, cmudict)
        if missing:
            log.warning("%d of %d words have no CMUdict pronunciation; they are <UNK> "
                        "(e.g. %s)", len(missing), len(vocab), ", ".join(missing[:10]))
        return entries, lexicon.phone_inventory(cmudict) + [lexicon.SPOKEN_NOISE]
    model = out_dir / "bpe.model"
    bpe.train_bpe([t.upper() for t in transcripts], size, model)
    sp = bpe.load_bpe(model)
    return bpe.bpe_lexicon(vocab, sp), bpe.bpe_pieces(sp)[1:]


def _write_tables(entries: list[lexicon.Entry], unit_list: list[str], out_dir: Path) -> None:
    disambig_entries, max_disambig = lexicon.add_disambig(entries)
    lexicon.write_lexicon(out_dir / "lexicon.txt", entries)
    lexicon.write_lexicon(out_dir / "lexicon_disambig.txt", disambig_entries)
    write_symbols(out_dir / "tokens.txt", [BLANK, *unit_list, *disambig_symbols(max_disambig + 1)])
    words = sorted({w for w, _ in entries} - {UNK_WORD})
    write_symbols(out_dir / "words.txt", [EPSILON, UNK_WORD, *words, "#0", BOS, EOS])
    log.info("lexicon: %d words, %d entries, %d units, disambiguation #0..#%d",
             len(words) + 1, len(entries), len(unit_list), max_disambig)


def _build_graphs(out_dir: Path, ngram_order: int) -> None:
    tokens = read_symbols(out_dir / "tokens.txt")
    words = read_symbols(out_dir / "words.txt")
    entries = lexicon.read_lexicon(out_dir / "lexicon_disambig.txt")
    lex_fst = graph.build_lexicon_fst(entries, tokens, words)
    lex_fst.write(str(out_dir / "L_disambig.fst"))
    g_fst = graph.build_grammar_fst(arpa_path(out_dir, ngram_order), out_dir / "words.txt",
                                    out_dir / "G.fst")
    lg = graph.compose_lg(lex_fst, g_fst)
    num_outputs = num_model_outputs(tokens)
    ctc_topo = graph.build_ctc_topo(num_outputs, range(num_outputs, len(tokens)))
    hlg = graph.compose_hlg(ctc_topo, lg)
    tmp = out_dir / "HLG.fst.tmp"
    hlg.write(str(tmp))
    tmp.replace(out_dir / "HLG.fst")
    log.info("graphs: L %d arcs, G %d arcs, LG %d arcs, HLG %d states / %d arcs",
             graph.num_arcs(lex_fst), graph.num_arcs(g_fst), graph.num_arcs(lg),
             hlg.num_states, graph.num_arcs(hlg))
