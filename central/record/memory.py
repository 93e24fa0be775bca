"""Stores a hub keeps in its own memory (not in hub.db): what another hub of a cluster cannot see
(docs/architecture.md, "State a hub keeps in memory")."""

from __future__ import annotations

from typing import Any

#: Finished import jobs kept for their status route; past it the oldest finished go first.
MAX_IMPORT_JOBS = 50


class MemoryImportJobs:
    """``ImportJobStore`` as a dict in insertion order; a job tells by ``job.finished`` whether it may go."""

    def __init__(self, max_jobs: int = MAX_IMPORT_JOBS) -> None:
        self.max_jobs = max_jobs
        self._jobs: dict[str, Any] = {}

    def get(self, job_id: str, /) -> Any:
        return self._jobs.get(job_id)

    def add(self, job_id: str, job: Any, /) -> None:
        while len(self._jobs) >= self.max_jobs and self._forget_oldest_finished():
            pass
        self._jobs[job_id] = job

    def save(self, job_id: str, job: Any, /) -> None:
        """Nothing to do: the job is this very object."""

    def _forget_oldest_finished(self) -> bool:
        for job_id, job in self._jobs.items():
            if job.finished:
                del self._jobs[job_id]
                return True
        return False

    def jobs(self) -> list[Any]:
        return list(self._jobs.values())

    def __len__(self) -> int:
        return len(self._jobs)
