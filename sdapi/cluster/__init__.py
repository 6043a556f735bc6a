"""Ray Serve mode (``sdapi serve --ray``): the same app as the ingress, its engine spread over replicas.

* :mod:`sdapi.cluster.board`: a small Ray actor every part shares: each replica's status (``/sdapi/v1/cluster``) and
  each running job's interrupt/skip flags (the ingress writes them, the replica running the job reads them).
* :mod:`sdapi.cluster.replica`: the engine deployment; each replica is a :class:`sdapi.engine.local.LocalEngine`
  over the shared models folder, its checkpoints chosen by Ray Serve's model multiplexing.
* :mod:`sdapi.cluster.engine`: :class:`RayEngine`, the :class:`sdapi.engine.api.Engine` the ingress serves with:
  each call goes to a replica, with the job's checkpoint as its multiplexed model id.
* :mod:`sdapi.cluster.training`: LoRA training jobs as Ray tasks on a device of their own, their progress streamed
  back to the ingress's training service.
* :mod:`sdapi.cluster.app`: the Serve application (ingress + engine deployment) and ``sdapi serve --ray``.

Ray is an optional extra (``pip install .[ray]``): nothing outside this package imports it, and only ``--ray`` and
Serve's ``import_path`` import this package.
"""
