"""MLflow's system metrics monitor for one tracked run (``logger.system_metrics=true``, rank 0).

``mlflow.start_run(log_system_metrics=True)`` starts MLflow's ``SystemMetricsMonitor`` only
for a run that is active in MLflow's fluent API, which Lightning's MLFlowLogger never makes
active. The monitor itself needs only the run id and the tracking URI, so it is started
here directly, next to the run Lightning logs to, and stopped before the logger ends the
run. It samples CPU, memory, disk and network through psutil (the ``metrics`` extra) and
GPUs through NVML where there are any, and logs ``system/*`` metrics every
``$MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` seconds (10 by default).
"""

from __future__ import annotations

import logging
from typing import Any, Optional

log = logging.getLogger("aegis.training")


class SystemMetrics:
    """One monitor thread; ``finish`` flushes what it collected and may be called twice."""

    def __init__(self, client: Any, run_id: str, uri: str, resumed: bool) -> None:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        # The monitor stops at its first sample when the run is not RUNNING; a resumed run
        # (ended FINISHED or KILLED by its last attempt) is running again.
        if client.get_run(run_id).info.status != "RUNNING":
            client.update_run(run_id, status="RUNNING")
        self._monitor: Optional[Any] = SystemMetricsMonitor(run_id, tracking_uri=uri, resume_logging=resumed)
        self._monitor.start()

    def finish(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.finish()
