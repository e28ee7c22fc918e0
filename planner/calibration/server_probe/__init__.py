"""The live-server probe (`specplan probe --server`): bounded streaming load on a running server.

Modules, each named after what it does: ``transport`` (http(s) with timeouts), ``stream`` (SSE
chunks -> one request's record), ``stats`` (TTFT, ITL, tokens/s per level), ``load`` (N requests,
at most C in flight), ``acceptance`` (the engine's own draft counts over a window) and ``run``
(the levels in turn, the baseline, the calibration file).
"""

from planner.calibration.server_probe.run import ServerProbeConfig, run_server_probe

__all__ = ["ServerProbeConfig", "run_server_probe"]
