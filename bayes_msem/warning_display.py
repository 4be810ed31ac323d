"""How the package's warnings print, installed when the package is imported.

A :class:`DataWarning` or :class:`SamplingWarning` prints as one line, ``SamplingWarning: <message>``,
without the file, line number and source line Python adds (the message names the cause and the
remedy; where in the caller's code it arose adds nothing). Other libraries' warnings print as
before. Python's default filter already shows a warning once per place it is issued.

PyTensor warns, the first time it compiles C code, that it could not link to a BLAS library where
none is installed system-wide (pip wheels of NumPy and SciPy ship OpenBLAS under prefixed symbols
that PyTensor's C code cannot link to), and its C code then falls back to NumPy's. The sampler does
not use that C code (nutpie compiles through numba, which calls BLAS itself), so the warning, and
the log line that may follow it, ask nothing of the user; both are silenced, and nothing else.
"""

from __future__ import annotations

import logging
import warnings

from .data.clustered import DataWarning
from .results.diagnostics import SamplingWarning

ONE_LINE = (DataWarning, SamplingWarning)
_BLAS_WARNING = "PyTensor could not link to a BLAS installation"
_BLAS_LOG = "Using NumPy C-API based implementation for BLAS functions."
_python_format = warnings.formatwarning


def format_warning(message, category: type[Warning], filename: str, lineno: int, line: str | None = None) -> str:
    """``Category: message`` on one line for the package's warnings; Python's format for others."""
    if issubclass(category, ONE_LINE):
        return f"{category.__name__}: {message}\n"
    return _python_format(message, category, filename, lineno, line)


def _not_blas_notice(record: logging.LogRecord) -> bool:
    return record.getMessage() != _BLAS_LOG


warnings.formatwarning = format_warning
warnings.filterwarnings("ignore", message=_BLAS_WARNING, category=UserWarning, module=r"pytensor\.")
logging.getLogger("pytensor.tensor.blas").addFilter(_not_blas_notice)
