"""The default corpus: multi-speaker English synthesised from several TTS engines.

Built so that WER means something: KJV sentences, speakers from five engines
(espeak-ng, flite, festival, SVOX Pico, piper) with pitch/rate variants (and, in
train, optional speed perturbation), splits disjoint by base voice (test has an
engine never heard in training), and additive noise plus room reverberation
recorded per utterance. Profiles: ``conf/data/synth-{quick,default,study}.yaml``.

Entry point: :func:`prepare_synth` (lhotse recipe contract); settings:
:class:`SynthConfig`.
"""

from asr_trainer.data.synth.config import SynthConfig
from asr_trainer.data.synth.prepare import prepare_synth

__all__ = ["SynthConfig", "prepare_synth"]
