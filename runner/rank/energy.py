"""Energy of the generation window, where the hardware reports it. Never an estimate.

Each rank opens NVML before its run's barrier and reads the total-energy counter
of its own GPU (millijoules since the driver loaded; Volta and newer) at the start
and the end of its timed window.
`nvidia-ml-py` (imported as `pynvml`) is an optional dependency, imported only by
GPU workers. Where there is no counter (a CPU run, no NVML, an older GPU) the
figures are None and `note` says why.

`run_energy` is pure: it turns the ranks' readings into the run's figures.
"""

from __future__ import annotations


class EnergyMeter:
    """One rank's counter. `start()` and `stop()` never raise: a missing counter
    leaves the figures empty with the reason, and never fails a run."""

    def __init__(self, device: str, uuid: str | None):
        self.device, self.uuid = device, uuid
        self.note: str | None = None
        self._nvml = self._handle = self._start_mj = None
        self.joules: float | None = None

    def open(self) -> None:
        """NVML's start-up and the device look-up: before the ranks meet at the
        barrier, because they take milliseconds that differ from rank to rank and
        would start each rank's timer at a different moment (see docs/performance.md, "How each figure is timed on CUDA")."""
        if not self.device.startswith("cuda"):
            self.note = "no energy counter: CPU run (no readable GPU counter, and RAPL is not read)"
            return
        try:
            import pynvml
        except ImportError:
            self.note = "no energy counter: nvidia-ml-py is not installed (pip install nvidia-ml-py)"
            return
        if not self.uuid:
            self.note = "no energy counter: the rank's GPU UUID is unknown, so its NVML device cannot be named"
            return
        try:
            pynvml.nvmlInit()
            # by UUID: NVML ignores CUDA_VISIBLE_DEVICES, so its index i need not be cuda:i
            uuid = self.uuid if self.uuid.startswith(("GPU-", "MIG-")) else f"GPU-{self.uuid}"
            self._handle = pynvml.nvmlDeviceGetHandleByUUID(uuid)
            self._nvml = pynvml
        except Exception as exc:  # NVMLError and its many subclasses
            self.note = f"no energy counter: NVML unavailable ({type(exc).__name__}: {exc})"

    def _read_mj(self) -> int | None:
        try:
            return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except Exception as exc:
            self.note = f"no energy counter: this GPU does not report total energy ({type(exc).__name__}: {exc})"
            return None

    def start(self) -> None:
        """The counter's reading, and nothing else: it sits between barrier and timer."""
        if self._nvml is not None:
            self._start_mj = self._read_mj()

    def stop(self) -> None:
        if self._nvml is None or self._start_mj is None:
            return
        end = self._read_mj()
        if end is not None:
            self.joules = window_joules(self._start_mj, end)
            if self.joules is None:
                self.note = "no energy figure: the counter went backwards (driver reloaded during the run?)"
        try:
            self._nvml.nvmlShutdown()
        except Exception:
            pass

    def to_dict(self) -> dict:
        return {"joules": self.joules, "note": None if self.joules is not None else self.note}


def window_joules(start_mj: int, end_mj: int) -> float | None:
    if end_mj < start_mj:
        return None
    return (end_mj - start_mj) / 1000.0
