"""Synchronisation strategies (none, allreduce, gtc, bmuf, hybrid), simulated or real.

Public API: :func:`load_sync_config`, :func:`build_strategy`, :class:`SyncStrategy`,
:class:`SimCommunicator`, :class:`DistCommunicator`, :func:`run_processes`,
:class:`StepStats`, :class:`SyncSummary`, :class:`Replica`, :func:`clipped_step`.
Nothing here depends on the trainer (the train/ package): the dependency points the other way.
"""

from asr_trainer.sync.comm import Communicator, DistCommunicator, Group, SimCommunicator
from asr_trainer.sync.config import (
    AllReduceConfig,
    BmufConfig,
    GtcConfig,
    HybridConfig,
    NoSyncConfig,
    SyncConfig,
    load_sync_config,
)
from asr_trainer.sync.launch import run_processes
from asr_trainer.sync.replica import Replica, clipped_step
from asr_trainer.sync.stats import StepStats, SyncSummary
from asr_trainer.sync.strategy import SyncStrategy, build_strategy

__all__ = [
    "AllReduceConfig", "BmufConfig", "Communicator", "DistCommunicator", "GtcConfig", "Group",
    "HybridConfig", "NoSyncConfig", "Replica", "SimCommunicator", "StepStats", "SyncConfig",
    "SyncStrategy", "SyncSummary", "build_strategy", "load_sync_config", "run_processes", "clipped_step",
]
