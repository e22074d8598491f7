"""The latent-space study (``equilens study``): train a sweep, read every layer,
score, compare and map them (:func:`run_study`, :class:`StudyConfig`)."""

from .config import ArchitectureConfig, StudyConfig, StudyError, load_study_config
from .run import run_study

__all__ = ["ArchitectureConfig", "StudyConfig", "StudyError", "load_study_config", "run_study"]
