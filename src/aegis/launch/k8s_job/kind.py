"""The batch/v1 Job as the shared Kubernetes client, follower and status see it."""

from __future__ import annotations

from aegis.k8s.kinds import Kind
from aegis.core.lifecycle import State

JOB = Kind(
    name="Job", group="batch", version="v1", plural="jobs", container="train", job_label="job-name",
    # FailureTarget/SuccessCriteriaMet precede Failed/Complete while pods terminate: still running.
    conditions=(("Complete", State.succeeded), ("Failed", State.failed), ("Suspended", State.queued)),
)
