"""Queued generation tasks that outlive the request (the Agent Scheduler vocabulary): the SQLite task store, the
result files beside it and the callback sender. Pure Python; what runs the tasks is ``sdapi.serving.tasks``."""
