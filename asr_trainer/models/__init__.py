"""CTC acoustic models: TDNN, LSTM, TDNN-LSTM; see :func:`build_model`."""

from asr_trainer.models.base import CtcModel
from asr_trainer.models.config import LstmConfig, ModelConfig, TdnnConfig, TdnnLstmConfig
from asr_trainer.models.factory import build_model, num_parameters

__all__ = ["CtcModel", "ModelConfig", "TdnnConfig", "LstmConfig", "TdnnLstmConfig", "build_model", "num_parameters"]
